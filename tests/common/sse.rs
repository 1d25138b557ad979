//! `GET /api/v1/events` read as a client does: a plain TCP connection
//! (HTTP/1.0, so the body is the rest of the connection), every `data:`
//! line parsed as JSON and handed over by a reader thread. Waits are
//! bounded.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long [`Stream::until`] waits for an event.
const WAIT: Duration = Duration::from_secs(10);

/// An SSE subscription: the status line and headers, then every `data:`
/// line parsed as JSON, delivered over a channel by a reader thread.
pub struct Stream {
    pub head: String,
    pub events: mpsc::Receiver<Value>,
    /// Everything seen, for failure messages.
    pub seen: Vec<Value>,
}

impl Stream {
    /// `auth` is the request's extra header line(s); `query` the query string.
    pub fn open(admin_port: u16, query: &str, auth: &str) -> Stream {
        let mut s = TcpStream::connect(("127.0.0.1", admin_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // HTTP/1.0: the body is the rest of the connection, not chunked.
        write!(
            s,
            "GET /api/v1/events{query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\
             Accept: text/event-stream\r\n{auth}\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in r.lines() {
                let Ok(line) = line else { return };
                if let Some(data) = line.strip_prefix("data:") {
                    let v: Value = serde_json::from_str(data.trim())
                        .unwrap_or_else(|e| panic!("event is not JSON ({e}): {data}"));
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Stream {
            head,
            events,
            seen: Vec::new(),
        }
    }

    pub fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The next event satisfying `want` (others are kept in `seen`).
    pub fn until(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return v;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what} on the stream; seen:\n{:#?}", self.seen);
    }
}
