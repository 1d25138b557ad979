//! Routes, token check and the server loop.

use super::backend::AdminBackend;
use crate::cdr::{parse_time, to_csv, to_json, CdrFilter, CdrStore};
use crate::views::{AgentStateRequest, SetStateError};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// What the HTTP layer needs from the configuration.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `server.admin_token`; None or empty = no check.
    pub token: Option<String>,
    /// `server.data_dir`, where the call records live; None = `/api/v1/cdr`
    /// answers 503.
    pub cdr_dir: Option<PathBuf>,
    /// Zone for `since`/`until` values without an offset.
    pub timezone: Tz,
}

#[derive(Clone)]
struct AppState {
    backend: Arc<dyn AdminBackend>,
    cfg: Arc<AdminConfig>,
    metrics: Arc<crate::metrics::Metrics>,
    status: Option<Arc<dyn super::status::DaemonStatus>>,
}

/// The admin router; `serve` it or nest it in a bigger one.
pub fn router(backend: Arc<dyn AdminBackend>, cfg: AdminConfig) -> Router {
    router_with_metrics(backend, cfg, crate::metrics::Metrics::new())
}

/// [`router`] whose `/metrics` exposes `metrics`.
pub fn router_with_metrics(
    backend: Arc<dyn AdminBackend>,
    cfg: AdminConfig,
    metrics: Arc<crate::metrics::Metrics>,
) -> Router {
    router_with_status(backend, cfg, metrics, None)
}

/// [`router_with_metrics`] whose `/health` and `/api/v1/blocked` read the
/// running daemon's `status`.
pub fn router_with_status(
    backend: Arc<dyn AdminBackend>,
    cfg: AdminConfig,
    metrics: Arc<crate::metrics::Metrics>,
    status: Option<Arc<dyn super::status::DaemonStatus>>,
) -> Router {
    let state = AppState {
        backend,
        cfg: Arc::new(cfg),
        metrics,
        status,
    };
    let api = Router::new()
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents/:id/state", post(set_agent_state))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/calls/:id/recording", get(recording))
        .route(
            "/api/v1/calls/:id/monitor",
            post(start_monitor)
                .patch(change_monitor)
                .delete(stop_monitor),
        )
        .route("/api/v1/callbacks", get(callbacks))
        .route("/api/v1/callbacks/:id", delete(cancel_callback))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/trunks/:name/calls", post(place_trunk_call))
        .route("/api/v1/cdr", get(cdr))
        .route("/api/v1/voicemail", get(voicemail_list))
        .route("/api/v1/voicemail/:id", get(voicemail_fetch))
        .route("/api/v1/plan", get(plan_json))
        .route("/api/v1/blocked", get(blocked))
        .route("/api/v1/blocked/:addr", delete(unblock))
        .route("/metrics", get(scrape_metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    // A page for browsers: the token may also come as `?token=`.
    let pages =
        Router::new()
            .route("/plan", get(plan_page))
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_token_or_query,
            ));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .merge(pages)
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Always 200 while the daemon serves; `degraded` with its reasons when
/// records or registrations cannot be written.
async fn health(State(st): State<AppState>) -> Response {
    let reasons = st.status.as_ref().map(|s| s.degraded()).unwrap_or_default();
    if reasons.is_empty() {
        return Json(json!({"status": "ok"})).into_response();
    }
    Json(json!({"status": "degraded", "reasons": reasons})).into_response()
}

/// `GET /api/v1/blocked`: sources blocked now (floods and guessing).
async fn blocked(State(st): State<AppState>) -> Response {
    let list = st.status.as_ref().map(|s| s.blocked()).unwrap_or_default();
    Json(json!({ "blocked": list })).into_response()
}

/// `DELETE /api/v1/blocked/ADDR`: lifts the blocks on ADDR.
async fn unblock(State(st): State<AppState>, Path(addr): Path<String>) -> Response {
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return error(StatusCode::BAD_REQUEST, "not an IP address");
    };
    match st.status.as_ref().is_some_and(|s| s.unblock(ip)) {
        true => Json(json!({ "unblocked": ip.to_string() })).into_response(),
        false => error(StatusCode::NOT_FOUND, "that address is not blocked"),
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(want) = st.cfg.token.as_deref().filter(|t| !t.is_empty()) else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(g) if same(g.as_bytes(), want.as_bytes()) => next.run(req).await,
        _ => {
            let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` value. The scheme is
/// case-insensitive (RFC 7235 §2.1): `bearer` and `BEARER` are the same,
/// and more than one space may separate it from the token.
pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(rest.trim())
}

async fn require_token_or_query(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let given = req.uri().query().and_then(super::events::query_token);
    let want = st.cfg.token.as_deref().filter(|t| !t.is_empty());
    match (want, given) {
        (Some(w), Some(g)) if same(g.as_bytes(), w.as_bytes()) => next.run(req).await,
        _ => require_token(State(st), req, next).await,
    }
}

/// `GET /plan` and `GET /api/v1/plan` parameters (as `sipacd plan`'s).
#[derive(Debug, Default, Deserialize)]
struct PlanQuery {
    weeks: Option<u32>,
    interval: Option<u32>,
    queue: Option<String>,
    from: Option<String>,
    history_weeks: Option<u32>,
    shrinkage: Option<f64>,
}

async fn compute_plan(st: &AppState, q: PlanQuery) -> Result<crate::plan::Plan, Response> {
    let Some(cfg) = st.backend.config().await else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration to plan from",
        ));
    };
    let from = match q.from.as_deref() {
        None => None,
        Some(d) => Some(
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("from `{d}` must be YYYY-MM-DD"),
                )
            })?,
        ),
    };
    let shrinkage = q.shrinkage.unwrap_or(0.0);
    if !(0.0..0.95).contains(&shrinkage) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "shrinkage must be from 0 to 0.95",
        ));
    }
    let now = chrono::Utc::now();
    let opts = crate::plan::PlanOptions {
        coverage: crate::plan::CoverageOptions {
            from,
            weeks: q.weeks.unwrap_or(1),
            interval_min: q.interval.unwrap_or(30),
            queue: q.queue,
            now,
        },
        shrinkage,
    };
    let dir = st.cfg.cdr_dir.clone();
    let weeks = i64::from(q.history_weeks.unwrap_or(4));
    let res = tokio::task::spawn_blocking(move || {
        let until = now.timestamp_millis();
        let demand = match (&dir, weeks) {
            (Some(d), w) if w > 0 => crate::plan::demand::from_store(
                &cfg,
                d,
                until - w * 7 * 86_400_000,
                until,
                opts.coverage.interval_min,
            )
            .map_err(|e| e.to_string())?,
            _ => None,
        };
        crate::plan::plan(&cfg, &opts, demand.as_ref()).map_err(|e| e.to_string())
    })
    .await;
    match res {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(error(StatusCode::BAD_REQUEST, e)),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn plan_json(State(st): State<AppState>, Query(q): Query<PlanQuery>) -> Response {
    match compute_plan(&st, q).await {
        Ok(p) => Json(p).into_response(),
        Err(r) => r,
    }
}

async fn plan_page(State(st): State<AppState>, Query(q): Query<PlanQuery>) -> Response {
    match compute_plan(&st, q).await {
        Ok(p) => (
            [(header::CACHE_CONTROL, "no-store")],
            axum::response::Html(crate::plan::svg::page(&p)),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of the token was right.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn scrape_metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    super::metrics::scrape(&*st.backend, &st.metrics, &headers).await
}

async fn queues(State(st): State<AppState>) -> Response {
    Json(st.backend.queues().await).into_response()
}

async fn agents(State(st): State<AppState>) -> Response {
    Json(st.backend.agents().await).into_response()
}

async fn calls(State(st): State<AppState>) -> Response {
    Json(st.backend.calls().await).into_response()
}

/// `GET /api/v1/callbacks`: waiting callbacks, next first.
async fn callbacks(State(st): State<AppState>) -> Response {
    Json(st.backend.callbacks().await).into_response()
}

/// `DELETE /api/v1/callbacks/ID`: cancels a callback (a call in progress
/// for it ends).
async fn cancel_callback(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.backend.cancel_callback(id.clone()).await {
        true => Json(json!({ "cancelled": id })).into_response(),
        false => error(StatusCode::NOT_FOUND, "no such callback"),
    }
}

async fn set_agent_state(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let req = match AgentStateRequest::from_json(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "body must be {{\"state\":\"available\"}} or \
                     {{\"state\":\"paused\",\"reason\":\"...\"}}: {e}"
                ),
            )
        }
    };
    match st.backend.set_agent_state(id, req).await {
        Ok(agent) => Json(agent).into_response(),
        Err(e @ SetStateError::UnknownAgent(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// Body of `POST /api/v1/calls/{id}/monitor` (`PATCH`: `mode` alone).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorBody {
    #[serde(default)]
    supervisor: Option<String>,
    mode: String,
}

fn monitor_body(
    body: &[u8],
    start: bool,
) -> Result<(Option<String>, crate::media::MonitorMode), String> {
    let shape = if start {
        "{\"supervisor\":\"AGENT or sip:URI\",\"mode\":\"listen|whisper|barge\"}"
    } else {
        "{\"mode\":\"listen|whisper|barge\"}"
    };
    let b: MonitorBody =
        serde_json::from_slice(body).map_err(|e| format!("body must be {shape}: {e}"))?;
    let mode = crate::media::MonitorMode::parse(&b.mode)
        .ok_or_else(|| format!("mode `{}` is not one of listen, whisper, barge", b.mode))?;
    match (start, b.supervisor) {
        (true, None) => Err(format!("body must be {shape}: supervisor missing")),
        (true, Some(s)) if s.is_empty() || s.chars().any(char::is_control) => {
            Err("supervisor must be an agent id or a sip: URI".to_owned())
        }
        (false, Some(_)) => Err(
            "the supervisor of a monitor leg cannot change: DELETE it and POST again".to_owned(),
        ),
        (_, s) => Ok((s, mode)),
    }
}

fn monitor_answer(
    res: Result<crate::views::MonitorView, crate::views::MonitorError>,
    ok: StatusCode,
) -> Response {
    use crate::views::MonitorError as E;
    match res {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e @ (E::UnknownCall(_) | E::NotMonitored(_))) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ E::BadRequest(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ E::Conflict(_)) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

/// `POST /api/v1/calls/{id}/monitor`: call a supervisor onto the call.
async fn start_monitor(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (supervisor, mode) = match monitor_body(&body, true) {
        Ok((Some(s), m)) => (s, m),
        Ok((None, _)) => return error(StatusCode::BAD_REQUEST, "supervisor missing"),
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let req = crate::views::MonitorRequest::Start { supervisor, mode };
    monitor_answer(st.backend.monitor(id, req).await, StatusCode::ACCEPTED)
}

/// `PATCH /api/v1/calls/{id}/monitor`: the monitor leg's new mode.
async fn change_monitor(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mode = match monitor_body(&body, false) {
        Ok((_, m)) => m,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let req = crate::views::MonitorRequest::Mode(mode);
    monitor_answer(st.backend.monitor(id, req).await, StatusCode::OK)
}

/// `DELETE /api/v1/calls/{id}/monitor`: end the monitor leg.
async fn stop_monitor(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let req = crate::views::MonitorRequest::Stop;
    monitor_answer(st.backend.monitor(id, req).await, StatusCode::OK)
}

/// Body of `POST /api/v1/trunks/{name}/calls`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunkCallBody {
    to: String,
    #[serde(default = "default_ring_s")]
    ring_timeout_s: u64,
}

fn default_ring_s() -> u64 {
    30
}

/// Longest ring of an outbound call placed over the API.
const MAX_TRUNK_RING_S: u64 = 600;

async fn place_trunk_call(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body: TrunkCallBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "body must be {{\"to\":\"NUMBER\"}} with an optional \"ring_timeout_s\": {e}"
                ),
            )
        }
    };
    if !(1..=MAX_TRUNK_RING_S).contains(&body.ring_timeout_s) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("ring_timeout_s must be 1..={MAX_TRUNK_RING_S}"),
        );
    }
    use crate::views::PlaceCallError as E;
    match st
        .backend
        .place_trunk_call(name, body.to, body.ring_timeout_s)
        .await
    {
        Ok(placed) => (StatusCode::ACCEPTED, Json(placed)).into_response(),
        Err(e @ E::UnknownTrunk(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ E::BadRequest(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ E::Refused(_)) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

async fn reload(State(st): State<AppState>) -> Response {
    match st.backend.reload().await {
        Ok(changed) => Json(json!({"changed": changed})).into_response(),
        Err(errors) => (StatusCode::BAD_REQUEST, Json(json!({"errors": errors}))).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CdrQuery {
    since: Option<String>,
    until: Option<String>,
}

/// The records directory and the `since`/`until` filter of a request on
/// the call records, or the answer refusing it.
fn records_query(
    st: &AppState,
    q: Result<Query<CdrQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(std::path::PathBuf, CdrFilter), Box<Response>> {
    let Ok(Query(q)) = q else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "query takes `since` and `until` only",
        )));
    };
    let Some(dir) = st.cfg.cdr_dir.clone() else {
        return Err(Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "call records are not enabled",
        )));
    };
    let now = chrono::Utc::now();
    let parse = |v: &Option<String>| v.as_deref().map(|s| parse_time(s, st.cfg.timezone, now));
    match (parse(&q.since).transpose(), parse(&q.until).transpose()) {
        (Ok(since_ms), Ok(until_ms)) => Ok((dir, CdrFilter { since_ms, until_ms })),
        (Err(e), _) | (_, Err(e)) => Err(Box::new(error(StatusCode::BAD_REQUEST, e.to_string()))),
    }
}

async fn cdr(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<CdrQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (dir, filter) = match records_query(&st, q) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    // SQLite is blocking: keep it off the async workers.
    let rows = tokio::task::spawn_blocking(move || {
        CdrStore::open_reader(&dir).and_then(|s| s.query(&filter))
    })
    .await;
    let records = match rows {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    if wants_csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(&records),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            to_json(&records),
        )
            .into_response()
    }
}

/// `GET /api/v1/voicemail`: the messages left in `voicemail` nodes by calls
/// arrived in [`since`, `until`), newest first.
async fn voicemail_list(
    State(st): State<AppState>,
    q: Result<Query<CdrQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (dir, filter) = match records_query(&st, q) {
        Ok(v) => v,
        Err(resp) => return *resp,
    };
    match tokio::task::spawn_blocking(move || super::voicemail::list(&dir, &filter)).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/v1/voicemail/ID`: the WAV of call ID's message; 404 when the
/// call is unknown, left no message, or its file is gone.
async fn voicemail_fetch(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    use super::voicemail::FetchError;
    let Some(dir) = st.cfg.cdr_dir.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "call records are not enabled",
        );
    };
    match tokio::task::spawn_blocking(move || super::voicemail::fetch(&dir, &id)).await {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response(),
        Ok(Err(
            e @ (FetchError::NoCall
            | FetchError::NoMessage
            | FetchError::Outside
            | FetchError::Gone),
        )) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/v1/calls/ID/recording`: the call's WAV, as its record links
/// it; 404 when the call has no record, was not recorded, or its file is
/// gone (`retention_days`).
async fn recording(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(dir) = st.cfg.cdr_dir.clone() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "call records are not enabled",
        );
    };
    let d = dir.clone();
    let rec =
        tokio::task::spawn_blocking(move || CdrStore::open_reader(&d).and_then(|s| s.get(&id)))
            .await;
    let rel = match rec {
        Ok(Ok(Some(r))) => match r.recording {
            Some(rel) => rel,
            None => return error(StatusCode::NOT_FOUND, "this call was not recorded"),
        },
        Ok(Ok(None)) => return error(StatusCode::NOT_FOUND, "no such call"),
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // The record names a file under data_dir, never outside it.
    let rel_path = std::path::Path::new(&rel);
    let inside = rel_path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return error(
            StatusCode::NOT_FOUND,
            "recording path is not under data_dir",
        );
    }
    match tokio::fs::read(dir.join(rel_path)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, "recording file is gone")
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_token("Bearer\tabc"), Some("abc"));
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bear"), None);
        assert_eq!(bearer_token("bëarer abc"), None);
    }
}
