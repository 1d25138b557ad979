//! What the admin API needs from the running daemon.

use std::future::Future;
use std::pin::Pin;

use crate::views::{AgentStateRequest, AgentView, CallView, QueueView, SetStateError};
use crate::views::{MonitorError, MonitorRequest, MonitorView, PlaceCallError, TrunkCallPlaced};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Implemented by the daemon over its running state. Every method is async:
/// the daemon answers from its run loop, over a channel.
pub trait AdminBackend: Send + Sync + 'static {
    /// Re-reads the configuration file. Ok: what changed; Err: every error,
    /// with the old configuration still in force.
    fn reload(&self) -> BoxFuture<'_, Result<Vec<String>, Vec<String>>>;
    fn queues(&self) -> BoxFuture<'_, Vec<QueueView>>;
    fn agents(&self) -> BoxFuture<'_, Vec<AgentView>>;
    /// Every agent's state only (the `/metrics` gauges): by default the
    /// full [`AdminBackend::agents`].
    fn agent_states(&self) -> BoxFuture<'_, Vec<AgentView>> {
        self.agents()
    }
    fn calls(&self) -> BoxFuture<'_, Vec<CallView>>;
    /// Returns the agent as it is after the change.
    fn set_agent_state(
        &self,
        id: String,
        req: AgentStateRequest,
    ) -> BoxFuture<'_, Result<AgentView, SetStateError>>;
    /// The configuration in force, for `/plan`; `None` (the default) when
    /// the backend has none (then `/plan` answers 503).
    fn config(&self) -> BoxFuture<'_, Option<std::sync::Arc<crate::config::Config>>> {
        Box::pin(async { None })
    }
    /// Calls `to` through trunk `trunk`, giving up after `ring_s`
    /// unanswered. The default refuses (a backend without trunks).
    fn place_trunk_call(
        &self,
        trunk: String,
        to: String,
        ring_s: u64,
    ) -> BoxFuture<'_, Result<TrunkCallPlaced, PlaceCallError>> {
        let _ = (to, ring_s);
        Box::pin(async move { Err(PlaceCallError::UnknownTrunk(trunk)) })
    }

    /// Waiting callbacks (`GET /api/v1/callbacks`). The default: none.
    fn callbacks(&self) -> BoxFuture<'_, Vec<crate::views::CallbackView>> {
        Box::pin(async { Vec::new() })
    }

    /// Cancels callback `id`; false when there is none.
    fn cancel_callback(&self, id: String) -> BoxFuture<'_, bool> {
        let _ = id;
        Box::pin(async { false })
    }

    /// Starts, changes or ends the monitor leg of call `call` (its
    /// Call-ID). The default refuses (a backend without calls).
    fn monitor(
        &self,
        call: String,
        req: MonitorRequest,
    ) -> BoxFuture<'_, Result<MonitorView, MonitorError>> {
        let _ = req;
        Box::pin(async move { Err(MonitorError::UnknownCall(call)) })
    }
}
