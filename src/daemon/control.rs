//! The admin API's way into the run loop: requests over a channel, each
//! with a oneshot for the answer. The loop owns the endpoint, so views are
//! computed and changes made between two SIP messages, never concurrently.

use tokio::sync::{mpsc, oneshot};

use crate::admin::{
    AdminBackend, AgentStateRequest, AgentView, BoxFuture, CallView, QueueView, SetStateError,
};

/// Requests the run loop answers.
pub enum Control {
    Queues(oneshot::Sender<Vec<QueueView>>),
    Agents(oneshot::Sender<Vec<AgentView>>),
    /// Every agent's state, as the live board folded it.
    AgentStates(oneshot::Sender<Vec<AgentView>>),
    Calls(oneshot::Sender<Vec<CallView>>),
    SetAgentState {
        id: String,
        req: AgentStateRequest,
        reply: oneshot::Sender<Result<AgentView, SetStateError>>,
    },
    Reload(oneshot::Sender<Result<Vec<String>, Vec<String>>>),
    /// The configuration in force (`/plan`).
    Config(oneshot::Sender<std::sync::Arc<crate::config::Config>>),
    /// Place an outbound call through a trunk.
    PlaceTrunkCall {
        trunk: String,
        to: String,
        ring_s: u64,
        reply: oneshot::Sender<Result<crate::views::TrunkCallPlaced, crate::views::PlaceCallError>>,
    },
    /// Waiting callbacks, and cancelling one.
    Callbacks(oneshot::Sender<Vec<crate::views::CallbackView>>),
    CancelCallback {
        id: String,
        reply: oneshot::Sender<bool>,
    },
    /// Start, change or end a call's monitor leg.
    Monitor {
        call: String,
        req: crate::views::MonitorRequest,
        reply: oneshot::Sender<Result<crate::views::MonitorView, crate::views::MonitorError>>,
    },
}

/// [`AdminBackend`] that asks the run loop.
pub struct ControlBackend {
    tx: mpsc::Sender<Control>,
}

impl ControlBackend {
    pub fn new(tx: mpsc::Sender<Control>) -> ControlBackend {
        ControlBackend { tx }
    }

    /// Sends a request and waits for its answer; `None` once the loop has
    /// stopped (the daemon is exiting).
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Control) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
}

const STOPPING: &str = "the daemon is stopping";

impl AdminBackend for ControlBackend {
    fn reload(&self) -> BoxFuture<'_, Result<Vec<String>, Vec<String>>> {
        Box::pin(async move {
            self.ask(Control::Reload)
                .await
                .unwrap_or_else(|| Err(vec![STOPPING.to_owned()]))
        })
    }

    fn queues(&self) -> BoxFuture<'_, Vec<QueueView>> {
        Box::pin(async move { self.ask(Control::Queues).await.unwrap_or_default() })
    }

    fn agents(&self) -> BoxFuture<'_, Vec<AgentView>> {
        Box::pin(async move { self.ask(Control::Agents).await.unwrap_or_default() })
    }

    fn agent_states(&self) -> BoxFuture<'_, Vec<AgentView>> {
        Box::pin(async move { self.ask(Control::AgentStates).await.unwrap_or_default() })
    }

    fn calls(&self) -> BoxFuture<'_, Vec<CallView>> {
        Box::pin(async move { self.ask(Control::Calls).await.unwrap_or_default() })
    }

    fn set_agent_state(
        &self,
        id: String,
        req: AgentStateRequest,
    ) -> BoxFuture<'_, Result<AgentView, SetStateError>> {
        Box::pin(async move {
            self.ask(|reply| Control::SetAgentState { id, req, reply })
                .await
                .unwrap_or_else(|| Err(SetStateError::Refused(STOPPING.to_owned())))
        })
    }

    fn config(&self) -> BoxFuture<'_, Option<std::sync::Arc<crate::config::Config>>> {
        Box::pin(async move { self.ask(Control::Config).await })
    }

    fn place_trunk_call(
        &self,
        trunk: String,
        to: String,
        ring_s: u64,
    ) -> BoxFuture<'_, Result<crate::views::TrunkCallPlaced, crate::views::PlaceCallError>> {
        Box::pin(async move {
            self.ask(|reply| Control::PlaceTrunkCall {
                trunk,
                to,
                ring_s,
                reply,
            })
            .await
            .unwrap_or_else(|| Err(crate::views::PlaceCallError::Refused(STOPPING.to_owned())))
        })
    }

    fn monitor(
        &self,
        call: String,
        req: crate::views::MonitorRequest,
    ) -> BoxFuture<'_, Result<crate::views::MonitorView, crate::views::MonitorError>> {
        Box::pin(async move {
            self.ask(|reply| Control::Monitor { call, req, reply })
                .await
                .unwrap_or_else(|| Err(crate::views::MonitorError::Conflict(STOPPING.to_owned())))
        })
    }

    fn callbacks(&self) -> BoxFuture<'_, Vec<crate::views::CallbackView>> {
        Box::pin(async move { self.ask(Control::Callbacks).await.unwrap_or_default() })
    }

    fn cancel_callback(&self, id: String) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            self.ask(|reply| Control::CancelCallback { id, reply })
                .await
                .unwrap_or(false)
        })
    }
}
