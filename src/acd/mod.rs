//! The ACD core: agents, waiting callers and the router that matches them.
//!
//! Sans-IO like the rest of sipacd: every entry point takes the monotonic
//! `now` (and the wall clock `wall` where schedules or shifts matter) and
//! returns [`Output`]s (offers to ring, callers to divert, timers to arm).
//! The driver arms the timers and feeds them back through
//! [`Router::timer`]; the router never reads a clock.
//!
//! # Concurrency design
//!
//! Every entry point takes `&self` and may run on any tokio worker at once.
//! There is no router-wide lock; the shared pieces are:
//!
//! * **Agent state word** (`AtomicU64` per agent: availability epoch and
//!   state tag). The only lock-free transition is the claim
//!   `Available(e) -> Deciding(e)` by compare-and-swap; whoever wins owns
//!   the agent until it moves it on (to `Ringing`, or back to `Available(e)`).
//!   All other transitions take that agent's own small mutex (`meta`), so two
//!   threads can never both offer a call to one agent.
//! * **Pools**: one per distinct (strategy, required skills) pair of a queue
//!   or one of its relax steps, holding exactly the available agents
//!   eligible for it, in the strategy's order (idle since, skill score,
//!   calls taken, random key, then index). A pool is a mutex over an 8-ary
//!   min-heap of `(key, agent, link)` nodes (round robin: a bitset over
//!   its members, walked from the cursor). Every (agent, pool) pair has a
//!   link in one flat array, an agent's links side by side, that records
//!   where its node is: no search ever. Picking takes the heap's top (a
//!   claim that loses its CAS, or meets an agent that is `Deciding` or
//!   leaving, walks on in order). An agent enters its pools when it
//!   becomes available; whoever moves it out of `Available` (ringing,
//!   paused, ...) removes it, under its `meta`. Removing only marks the node
//!   dead (a tombstone keeps its key and place), and the agent's next stay
//!   revives it in place: usually the same key or a move of one level,
//!   since most nodes are leaves. Claims pop the tombstones that reach the
//!   top; a heap is compacted when they outnumber its live nodes. The
//!   agent's pools are locked together, in ascending pool order (a claim
//!   holds one pool and no other lock), so the cache misses of its pools
//!   overlap instead of queueing behind each unlock. Measured (bench
//!   `router`, 1 thread, median µs per decision, shared 2-core machine):
//!   1k/10k/100k agents went from 1.3/3.1/7.1 with a `BTreeSet` per pool
//!   (its removal plus insert walked ~24 cold cache lines per pool) to
//!   1.1/1.8/2.2-2.7; the 100k/1k ratio from 5.4 to 1.8-2.4 between runs.
//!   Tried and dropped: lazy removal of stale entries (each costs a cold
//!   read of the agent's word where it is met; measured slower with the
//!   `BTreeSet`).
//! * **Lanes**: one per (queue, relax level), a `Mutex<BTreeMap>` of waiting
//!   callers ordered by priority then arrival. Removing a caller from its
//!   lane is what takes it: exactly one thread can do so. Its length is
//!   mirrored in an atomic (stored under the mutex, SeqCst) so that empty
//!   lanes are skipped without locking them.
//! * **Call locations** (`DashMap`, sharded): where each call is (waiting in a
//!   lane, offered to / talking with an agent, hung up while being taken).
//!
//! Locks are only ever nested as agent `meta` -> pool | lane | call-location
//! shard, and call-location shard -> lane, so there is no cycle.
//!
//! **No lost wake-up.** A caller is inserted into its lane *before* its
//! thread searches the pool; a freed agent is inserted into its pools
//! *before* its thread searches its lanes (and an agent put back from
//! `Deciding` to `Available` re-searches its lanes). Each side publishes and
//! then looks, under the same mutexes or through SeqCst atomics (the
//! agent's word, the lane's length), so whichever looks second sees the
//! other: a caller never waits while an eligible agent sits available.
//!
//! **Fairness across queues.** An agent, once claimed, always takes the best
//! caller across all the lanes it is eligible for, ranked by queue priority
//! plus the caller's own priority (higher first), then the earliest arrival.
//!
//! Reload ([`Router::reload`]) takes `&mut self`: the driver applies it
//! between decisions. Agents (by id) keep state, pause reason and counters;
//! waiting callers keep their place.

mod agent;
pub mod estimate;
mod ids;
mod lane;
pub mod model;
mod pool;
mod rejoin;
mod router;
mod topology;

#[cfg(test)]
mod tests;

pub use ids::{AgentId, AgentRef, Names, QueueId, Renumbering};
pub use pool::random_key;
pub use router::Router;
pub use topology::{eligible, required_skills, skill_score, AcdConfig};

use crate::config::Target;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The router's handle for a call; the call layer picks it (unique while
/// the call lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// The contract's agent states (`GET /api/v1/agents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentState {
    LoggedOut,
    Available,
    Ringing,
    OnCall,
    Wrapup,
    Paused,
    OffShift,
}

impl AgentState {
    /// The name used in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Ringing => "ringing",
            AgentState::OnCall => "on_call",
            AgentState::Wrapup => "wrapup",
            AgentState::Paused => "paused",
            AgentState::OffShift => "off_shift",
        }
    }
}

/// Pause reason set by the router when an agent does not answer in time.
pub const RONA: &str = "rona";

/// Why a caller leaves a queue without an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DivertReason {
    /// The queue's schedule is closed.
    Closed,
    /// Waited `max_wait_s`.
    MaxWait,
    /// The queue already held `max_waiting` callers.
    MaxWaiting,
    /// The queue disappeared in a reload.
    QueueRemoved,
}

/// Timers the driver arms and feeds back through [`Router::timer`]. A timer
/// that no longer applies (the call moved on) is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Ring no answer: the agent is paused with reason `rona`. The id is
    /// of the table in force when it was armed: the router only acts on it
    /// when that agent is still ringing with `call` and its ring deadline
    /// has come, and a reload that moves the agent's id arms it again under
    /// the new id (see [`Router::reload`]).
    RingTimeout { agent: AgentId, call: CallId },
    /// After-call work is over (checked like `RingTimeout`).
    WrapupEnd { agent: AgentId, call: CallId },
    /// The caller reaches relax step `level` (1-based).
    Relax { call: CallId, level: usize },
    /// The caller waited `max_wait_s`.
    MaxWait { call: CallId },
    /// An agent's refusal of the caller is over (`retry_s`): offer it again.
    RetryRefused { call: CallId },
}

/// Ring `agent` with `call`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offer {
    /// The router's id for the agent, for what the engine tells it back
    /// about this offer (as an [`AgentRef`]).
    pub agent: AgentId,
    /// The agent's name, for the edges: the INVITE, its binding, events
    /// and logs. An offer handed between shards may be carried out after a
    /// reload renumbered the agents; the name is what stays true.
    pub agent_name: Arc<str>,
    pub call: CallId,
    /// The queue it was offered from (the call knows its queue's name).
    pub queue: QueueId,
    /// Time in queue so far (for `X-Sipacd-Wait`).
    pub waited: Duration,
}

/// The router's account of one offer (see [`Router::explain_offer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferExplain {
    /// Relax step the caller was at (0 = the queue's own skills).
    pub level: usize,
    /// Agents with the skills this step asks for.
    pub eligible: usize,
    /// Of those, available right after the offer (the chosen one is out).
    pub free: usize,
    /// The free agents next in line, best first.
    pub runners_up: Vec<Arc<str>>,
}

/// What the driver must do after an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Output {
    /// Send the agent an INVITE for the call (a `RingTimeout` timer follows).
    Offer(Offer),
    /// The caller leaves the queue for `target` (`None` = hang up).
    Divert {
        call: CallId,
        queue: Arc<str>,
        reason: DivertReason,
        target: Option<Target>,
    },
    /// Call [`Router::timer`] with `timer` at `at`.
    Arm { at: Instant, timer: Timer },
}

/// One agent as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub id: Arc<str>,
    pub name: String,
    pub state: AgentState,
    pub pause_reason: Option<String>,
    pub registered: bool,
    pub calls_taken: u64,
    pub last_call_end: Option<Instant>,
    /// The call it is ringing with, talking on or wrapping up.
    pub call: Option<CallId>,
}

/// One queue as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    pub name: Arc<str>,
    pub waiting: usize,
    pub longest_wait: Duration,
    pub agents_available: usize,
    /// Ringing, on a call or in wrap-up.
    pub agents_busy: usize,
    /// Of `agents_busy`, those in wrap-up.
    pub agents_wrapup: usize,
    pub agents_paused: usize,
}

/// Errors for events that name something the router does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcdError {
    #[error("unknown queue `{0}`")]
    UnknownQueue(String),
    #[error("unknown agent `{0}`")]
    UnknownAgent(String),
    #[error("call {0:?} is already known to the router")]
    DuplicateCall(CallId),
    #[error("agent `{agent}` is not {expected} with call {call:?}")]
    WrongState {
        agent: String,
        call: CallId,
        expected: &'static str,
    },
}

/// Admin state change (`POST /api/v1/agents/{id}/state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminState {
    Available,
    Paused(String),
}
