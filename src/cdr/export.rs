//! `GET /api/v1/cdr` bodies: JSON (the records as stored, times in Unix ms)
//! or CSV for spreadsheets (times in RFC 3339 UTC, JSON columns as text).

use super::record::CallRecord;
use super::time::rfc3339;

/// A JSON array of records.
pub fn to_json(records: &[CallRecord]) -> String {
    // Serializing plain structs of strings, numbers and maps cannot fail.
    serde_json::to_string(records).unwrap_or_else(|_| "[]".to_owned())
}

const CSV_HEADER: &str = "id,caller,number,queue,arrived,queued,offered,answered,ended,\
agent,disposition,hangup_by,ivr_path,variables,routing,closed_by,hold_s,legs,recording,monitors,voicemail,csat,callback\r\n";

/// RFC 4180 CSV with a header line.
pub fn to_csv(records: &[CallRecord]) -> String {
    let mut out = String::from(CSV_HEADER);
    let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_default();
    for r in records {
        let fields = [
            r.id.clone(),
            r.caller.clone(),
            r.number.clone(),
            r.queue.clone().unwrap_or_default(),
            rfc3339(r.arrived_ms),
            time(r.queued_ms),
            time(r.offered_ms),
            time(r.answered_ms),
            time(r.ended_ms),
            r.agent.clone().unwrap_or_default(),
            r.disposition.as_str().to_owned(),
            r.hangup_by
                .map(|h| h.as_str().to_owned())
                .unwrap_or_default(),
            json(&r.ivr_path),
            json(&r.variables),
            r.routing.as_ref().map(json).unwrap_or_default(),
            r.closed_by.clone().unwrap_or_default(),
            format!("{:.1}", r.hold_ms as f64 / 1000.0),
            json(&r.legs),
            r.recording.clone().unwrap_or_default(),
            json(&r.monitors),
            r.voicemail.clone().unwrap_or_default(),
            r.csat.map(|c| c.to_string()).unwrap_or_default(),
            r.callback.as_ref().map(json).unwrap_or_default(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_field(&mut out, f);
        }
        out.push_str("\r\n");
    }
    out
}

/// Quotes a field when it holds a separator, quote or line break.
fn push_field(out: &mut String, f: &str) {
    if f.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
