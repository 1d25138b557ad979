//! The estimated wait as the engine serves it: learnt from a scripted
//! answered call, shown per queue and per waiting caller, and falling as
//! an agent joins.

use super::*;
use crate::views::AgentStateRequest;

fn support(h: &mut Harness) -> crate::views::QueueView {
    h.queue_views()
        .into_iter()
        .find(|q| q.name == "support")
        .unwrap()
}

/// Which of the two support agents (ports 5080, 5081) got the INVITE.
fn offered(out: &[(Peer, rsip::SipMessage)]) -> (u16, rsip::Request) {
    for port in [5080, 5081] {
        if let Some(r) = requests_to(out, agent(port)).into_iter().next() {
            return (port, r);
        }
    }
    panic!("no agent offered: {out:?}");
}

#[test]
fn the_wait_is_learnt_from_handle_times_and_falls_as_an_agent_joins() {
    let mut h = Harness::new();
    assert_eq!(
        support(&mut h).estimated_wait_s,
        Some(0.0),
        "two agents free"
    );
    assert_eq!(support(&mut h).handle_time_s, None);

    // One call, answered and talked for 60 s.
    let (tag, out) = queued_caller(&mut h, "w1");
    let (port, inv) = offered(&out);
    h.send_from(agent(port), &answer(&inv, 200, "agw1", AGENT_SDP));
    h.advance_all(Duration::from_secs(60));
    h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "w1", &tag, 2, "z9hG4bKbw1"),
    );
    assert_eq!(support(&mut h).handle_time_s, Some(60.0));

    // One agent paused, the other on a call: a new caller waits one
    // handle time.
    let paused = if port == 5080 { "2002" } else { "2001" };
    h.ep.set_agent_state(paused, AgentStateRequest::Paused { reason: None }, h.now)
        .unwrap();
    h.drain_all();
    let (_, out) = queued_caller(&mut h, "w2");
    let (p2, inv2) = offered(&out);
    h.send_from(agent(p2), &answer(&inv2, 200, "agw2", AGENT_SDP));
    let q = support(&mut h);
    assert_eq!((q.agents_available, q.agents_busy), (0, 1), "{q:?}");
    assert_eq!(q.estimated_wait_s, Some(60.0));

    // The paused agent comes back: the next caller is taken at once.
    h.ep.set_agent_state(paused, AgentStateRequest::Available, h.now)
        .unwrap();
    let q = support(&mut h);
    assert_eq!(q.estimated_wait_s, Some(0.0), "{q:?}");
}

#[test]
fn a_waiting_caller_sees_its_place_and_no_estimate_while_nobody_serves() {
    let mut h = Harness::new();
    let out = h.send(&invite("1560", "nw1", "z9hG4bKnw1"));
    let tag = to_tag(&out[0]);
    h.send_from(
        h.phone,
        &in_dialog("ACK", "1560", "nw1", &tag, 1, "z9hG4bKanw1"),
    );
    let calls = h.ep.call_views(h.now);
    let c = calls.iter().find(|c| c.id == "nw1").unwrap();
    assert_eq!(c.position, Some(1));
    assert_eq!(c.estimated_wait_s, None, "queue `hold` has no agent");
    let hold = h
        .queue_views()
        .into_iter()
        .find(|q| q.name == "hold")
        .unwrap();
    assert_eq!(hold.estimated_wait_s, None);
}

#[test]
fn the_position_announcement_adds_the_wait_when_its_prompts_exist() {
    use super::super::MediaCommand;
    let mut h = Harness::new();
    let mut cfg = (*h.ep.config()).clone();
    cfg.wait_prompts = true;
    if let Some(q) = cfg.queues.get_mut("support") {
        q.announce_position_s = 2;
    }
    h.ep.apply_config(Arc::new(cfg), h.now);
    h.drain_all();
    // A first call teaches a 60 s handle time.
    let (tag, out) = queued_caller(&mut h, "a1");
    let (port, inv) = offered(&out);
    h.send_from(agent(port), &answer(&inv, 200, "aga1", AGENT_SDP));
    h.advance_all(Duration::from_secs(60));
    h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "a1", &tag, 2, "z9hG4bKba1"),
    );
    // The other agent paused, this one on a call: the next caller waits.
    let paused = if port == 5080 { "2002" } else { "2001" };
    h.ep.set_agent_state(paused, AgentStateRequest::Paused { reason: None }, h.now)
        .unwrap();
    let (_, out) = queued_caller(&mut h, "a2");
    let (p2, inv2) = offered(&out);
    h.send_from(agent(p2), &answer(&inv2, 200, "aga2", AGENT_SDP));
    let out = h.send(&invite("1500", "a3", "z9hG4bKa3"));
    let tag3 = to_tag(&out[0]);
    h.send_from(h.phone, &queued_ack("a3", &tag3));
    while h.ep.poll_media().is_some() {}
    h.advance_all(Duration::from_secs(2));
    let plays: Vec<Vec<String>> = std::iter::from_fn(|| h.ep.poll_media())
        .filter_map(|c| match c {
            MediaCommand::Play {
                prompts,
                looped: false,
                ..
            } => Some(
                prompts
                    .iter()
                    .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    let want: Vec<String> = [
        "you-are-number.wav",
        "1.wav",
        "in-the-queue.wav",
        "estimated-wait.wav",
        "1.wav",
        "minutes.wav",
    ]
    .map(String::from)
    .to_vec();
    assert!(plays.contains(&want), "{plays:?}");
}

#[test]
fn a_surveyed_calls_handle_time_ends_with_the_agents_hang_up() {
    let mut h = Harness::with_config(|t| {
        t.replace(
            "[queues.support]\nring_timeout_s = 10\n",
            "[queues.support]\nring_timeout_s = 10\nsurvey = \"ivr:rate\"\n",
        ) + "\n[ivr.rate]\nstart = \"score\"\n\n[ivr.rate.nodes.score]\ntype = \"survey\"\n\
             prompt = \"menu.wav\"\ntimeout_s = 5\nretries = 0\nnext = \"hangup\"\n"
    });
    let (tag, out) = queued_caller(&mut h, "sv1");
    let (port, inv) = offered(&out);
    let out = h.send_from(agent(port), &answer(&inv, 200, "agsv1", AGENT_SDP));
    let ack = requests_to(&out, agent(port)).remove(0).to_string();
    h.advance_all(Duration::from_secs(40));
    // The agent hangs up in its leg's dialog; the caller goes on to the
    // survey and hangs up there 10 s later.
    let line = |name: &str| ack.lines().find(|l| l.starts_with(name)).unwrap();
    let bye = format!(
        "BYE sip:sipacd@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKsvbye\n\
         Max-Forwards: 70\n{}\n{}\n{}\nCSeq: 2 BYE\nContent-Length: 0\n\n",
        line("To:").replacen("To:", "From:", 1),
        line("From:").replacen("From:", "To:", 1),
        line("Call-ID:"),
    );
    let out = h.send_from(agent(port), &bye);
    assert!(requests_to(&out, h.phone).is_empty(), "the caller stays");
    assert_eq!(support(&mut h).handle_time_s, Some(40.0));
    h.advance_all(Duration::from_secs(10));
    h.send_from(
        h.phone,
        &in_dialog("BYE", "1500", "sv1", &tag, 2, "z9hG4bKbsv1"),
    );
    assert!(h.ep.call_views(h.now).is_empty(), "the call ended");
    assert_eq!(support(&mut h).handle_time_s, Some(40.0), "learnt once");
}
