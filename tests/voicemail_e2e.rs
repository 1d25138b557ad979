//! Leave a message, end to end: a caller dials a number whose IVR goes
//! straight to a `voicemail` node, plays a tone for about two seconds and
//! falls silent; the silence ends the message (`silence_s`) and the IVR
//! hangs up. The message is then listed by `GET /api/v1/voicemail`, served
//! as a WAV by `GET /api/v1/voicemail/ID` holding the caller's tone, and
//! linked from the call record.

mod common;

use common::baresip::{read_wav_8k_mono, rms, tone_share};
use common::http::{get_bytes, get_json};
use common::phone::Caller;
use common::sse::Stream;
use common::tone::ToneStream;
use common::{ConfigSpec, Daemon};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const CALLER_HZ: f64 = 700.0;

const MESSAGE_IVR: &str = r#"
[[numbers]]
number = "1900"
to = "ivr:message"

[ivr.message]
start = "record"

[ivr.message.nodes.record]
type = "voicemail"
silence_s = 1
max_s = 20
"#;

#[test]
fn a_callers_message_ends_on_silence_and_is_listed_served_and_recorded() {
    let mut spec = ConfigSpec::new();
    spec.extra = MESSAGE_IVR.into();
    let admin_port = spec.admin_port;
    let d = Daemon::start_with(spec);
    // Subscribed before the call, so the message's live event is seen.
    let mut live = Stream::open(admin_port, "", "");
    assert_eq!(live.status(), 200, "{}", live.head);
    let caller = Caller::dial_from(d.sip_port(), "1900", "5557777");
    let cid = caller.call_id.clone();
    let port = caller.leg_port.expect("the IVR answered with SDP");
    let tone = ToneStream::start(caller.rtp_socket(), CALLER_HZ, port);
    std::thread::sleep(Duration::from_secs(2));
    drop(tone);
    let silent_since = Instant::now();
    // One second without voice ends the message; the node then hangs up.
    assert!(
        caller.expect_bye(WAIT).is_some(),
        "no BYE after the silence\n{}",
        d.stderr()
    );
    // Speech is reported every 0.5 s (`VOICE_EVERY`), so the 1 s of
    // silence counts from the last report: 0.5 to 1 s after the tone.
    let waited = silent_since.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "the message ended before the silence timer: {waited:?}"
    );

    let api = d.admin_url();
    let mut list = serde_json::Value::Null;
    common::wait_until("the message listed", WAIT, || {
        list = get_json(&format!("{api}/api/v1/voicemail"));
        list.as_array().is_some_and(|l| !l.is_empty())
    });
    let entries = list.as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{list}");
    let m = &entries[0];
    assert_eq!(m["call"], cid.as_str(), "{m}");
    assert_eq!(m["caller"], "5557777", "{m}");
    assert_eq!(m["number"], "1900", "{m}");
    let secs = m["seconds"].as_f64().unwrap_or_else(|| panic!("{m}"));
    assert!(
        (1.5..=4.5).contains(&secs),
        "about 2 s of tone and 1 s of silence: {m}"
    );

    let event = live.until("the voicemail live event", |e| {
        e["type"] == "voicemail" && e["call"] == cid.as_str()
    });
    assert_eq!(event["from"], "5557777", "{event}");
    assert_eq!(event["path"], m["path"], "{event}");
    // The event counts the time the recording ran; the list the audio the
    // file holds, which lacks the silence here (no RTP is sent in it).
    let ran = event["seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("{event}"));
    assert!(
        ran >= secs && ran <= secs + 1.5,
        "recording ran {ran} s for {secs} s of audio: {event}"
    );

    let (code, kind, wav) = get_bytes(&format!("{api}/api/v1/voicemail/{cid}"));
    assert_eq!((code, kind.as_str()), (200, "audio/wav"));
    let file = d.cfg.root().join("fetched.wav");
    std::fs::write(&file, &wav).expect("write the fetched WAV");
    let samples = read_wav_8k_mono(&file);
    // Half-second windows holding the caller's tone.
    let toned = samples
        .chunks_exact(4000)
        .filter(|w| rms(w) > 1000.0 && tone_share(w, CALLER_HZ) > 0.5)
        .count();
    assert!(
        toned >= 2,
        "the message holds {toned} half-seconds of {CALLER_HZ} Hz ({} samples)",
        samples.len()
    );
    assert_eq!(
        get_bytes(&format!("{api}/api/v1/voicemail/no-such-call")).0,
        404
    );

    let rec = get_json(&format!("{api}/api/v1/cdr"));
    let row = rec
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == cid.as_str()))
        .unwrap_or_else(|| panic!("no record of {cid}: {rec}"));
    assert_eq!(row["voicemail"], m["path"], "{row}");
}
