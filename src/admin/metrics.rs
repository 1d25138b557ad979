//! `GET /metrics`: the daemon's counters plus gauges computed now from the
//! queue views and agent states (in the daemon, both folded from the event
//! stream: [`super::board`]), in the Prometheus text format (0.0.4), or in
//! OpenMetrics when the scraper's `Accept` asks for it.

use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::backend::AdminBackend;
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};

pub(super) async fn scrape(
    backend: &dyn AdminBackend,
    metrics: &Metrics,
    headers: &HeaderMap,
) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let queues = backend.queues().await;
    let agents = backend.agent_states().await;
    let body = metrics.render(&queues, &agents, openmetrics);
    let ctype = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        TEXT_CONTENT_TYPE
    };
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}
