//! Live events over server-sent events (`GET /api/v1/events`) and the
//! wallboard page (`GET /`) that shows them.
//!
//! The daemon publishes each event once, as JSON text, on a broadcast
//! channel ([`EventHub`]); every stream subscribes to it. A client too slow
//! to keep up misses events (and is told so with a `lagged` event) instead
//! of slowing anything down: the run loop never waits for a subscriber.
//!
//! Both routes take the token as `Authorization: Bearer` like the rest of
//! `/api`, or as `?token=` because a browser's `EventSource` (and a wall
//! screen opening a bookmark) cannot send headers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;

/// The wallboard, one self-contained file.
const WALLBOARD: &str = include_str!("wallboard.html");

/// Events a subscriber may fall behind by before it misses some.
pub const EVENT_BACKLOG: usize = 1024;

/// How often an idle stream gets a comment line, so proxies and browsers
/// keep the connection open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where the daemon publishes live events.
#[derive(Debug, Clone)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new(EVENT_BACKLOG)
    }
}

impl EventHub {
    pub fn new(backlog: usize) -> EventHub {
        let (tx, _) = broadcast::channel(backlog.max(1));
        EventHub { tx }
    }

    /// Sends one event to every stream; serialized only if someone listens.
    pub fn publish<T: Serialize>(&self, event: &T) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        match serde_json::to_string(event) {
            Ok(text) => drop(self.tx.send(text.into())),
            Err(e) => tracing::warn!(error = %e, "live event not serializable"),
        }
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[derive(Clone)]
struct LiveState {
    /// Weak, so that streams end when the daemon drops its hub at exit
    /// (the server's graceful shutdown then has nothing to wait for).
    tx: broadcast::WeakSender<Arc<str>>,
    token: Option<Arc<str>>,
}

/// Adds `GET /` (the wallboard) and `GET /api/v1/events` to `app`.
/// `token` is `server.admin_token` (None or empty: no check).
pub fn with_live_routes(app: Router, hub: &EventHub, token: Option<String>) -> Router {
    let st = LiveState {
        tx: hub.tx.downgrade(),
        token: token.filter(|t| !t.is_empty()).map(Into::into),
    };
    let live = Router::new()
        .route("/", get(wallboard))
        .route("/api/v1/events", get(events))
        .route_layer(middleware::from_fn_with_state(st.clone(), token_or_query))
        .with_state(st);
    app.merge(live)
}

/// The bearer token from the header, or else from `?token=`.
async fn token_or_query(State(st): State<LiveState>, req: Request, next: Next) -> Response {
    let Some(want) = st.token.as_deref() else {
        return next.run(req).await;
    };
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(super::http::bearer_token)
        .map(str::to_owned);
    let query = req.uri().query().and_then(query_token);
    let ok = [header, query]
        .into_iter()
        .flatten()
        .any(|g| super::http::same(g.as_bytes(), want.as_bytes()));
    if ok {
        return next.run(req).await;
    }
    let mut r = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "missing or wrong token (Bearer header or ?token=)"})),
    )
        .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// `token` from a query string, percent-decoded.
pub(super) fn query_token(q: &str) -> Option<String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .and_then(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn wallboard() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(WALLBOARD)).into_response()
}

/// Now, as the events carry it.
fn stamp() -> (String, i64) {
    let now = chrono::Utc::now();
    (
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        now.timestamp_millis(),
    )
}

async fn events(State(st): State<LiveState>) -> Response {
    let Some(rx) = st.tx.upgrade().map(|tx| tx.subscribe()) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the daemon is stopping"})),
        )
            .into_response();
    };
    stream_of(rx).into_response()
}

/// `hello`, then every published event as it comes.
fn stream_of(
    rx: broadcast::Receiver<Arc<str>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // The first event says the subscription is in place: whatever happens
    // from then on is on this stream.
    let (ts, ts_ms) = stamp();
    let hello = json!({"type": "hello", "ts": ts, "ts_ms": ts_ms}).to_string();
    let first = stream::once(async move { Ok(Event::default().data(hello)) });
    let rest = stream::unfold(rx, |mut rx| async move {
        let data = match rx.recv().await {
            Ok(text) => text.to_string(),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let (ts, ts_ms) = stamp();
                json!({"type": "lagged", "missed": missed, "ts": ts, "ts_ms": ts_ms}).to_string()
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().data(data)), rx))
    });
    Sse::new(futures_util::StreamExt::chain(first, rest))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_token_is_found_and_decoded() {
        assert_eq!(query_token("a=1&token=s%2Fx+y"), Some("s/x y".into()));
        assert_eq!(query_token("tokenx=1"), None);
        assert_eq!(query_token("token=%zz"), None);
    }

    /// The next chunk of an SSE body, as text.
    async fn next_chunk(body: &mut axum::body::BodyDataStream) -> String {
        let chunk = futures_util::StreamExt::next(body).await;
        String::from_utf8(chunk.expect("stream ended").unwrap().to_vec()).unwrap()
    }

    // The clock is paused: tokio jumps it forward when everything idles,
    // so the 15 s keep-alive comes at once.
    #[tokio::test(start_paused = true)]
    async fn stream_says_hello_keeps_alive_and_reports_lag() {
        let hub = EventHub::new(2);
        let rx = hub.tx.subscribe();
        let mut body = stream_of(rx).into_response().into_body().into_data_stream();
        let hello = next_chunk(&mut body).await;
        assert!(
            hello.starts_with("data: {") && hello.contains(r#""type":"hello""#),
            "{hello}"
        );
        assert_eq!(next_chunk(&mut body).await, ": keep-alive\n\n");
        hub.publish(&json!({"type": "call_arrived"}));
        assert_eq!(
            next_chunk(&mut body).await,
            "data: {\"type\":\"call_arrived\"}\n\n"
        );
        for n in 0..3 {
            hub.publish(&json!({"n": n}));
        }
        let lagged = next_chunk(&mut body).await;
        let lagged: serde_json::Value =
            serde_json::from_str(lagged.trim().trim_start_matches("data: ")).unwrap();
        assert_eq!(
            (&lagged["type"], &lagged["missed"]),
            (&json!("lagged"), &json!(1))
        );
        assert_eq!(next_chunk(&mut body).await, "data: {\"n\":1}\n\n");
        // The daemon drops its hub at exit: what is left is sent, then
        // the stream ends.
        drop(hub);
        assert_eq!(next_chunk(&mut body).await, "data: {\"n\":2}\n\n");
        assert!(futures_util::StreamExt::next(&mut body).await.is_none());
    }

    #[tokio::test]
    async fn publish_reaches_subscribers_and_lag_is_reported() {
        let hub = EventHub::new(2);
        hub.publish(&json!({"type": "nobody"})); // no subscriber: dropped
        let mut rx = hub.tx.subscribe();
        for i in 0..3 {
            hub.publish(&json!({"n": i}));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(1))
        ));
        assert_eq!(&*rx.recv().await.unwrap(), r#"{"n":1}"#);
    }
}
