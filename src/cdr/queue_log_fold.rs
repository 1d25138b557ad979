//! Asterisk `queue_log` lines folded from the engine's event stream
//! (`server.queue_log`): ENTERQUEUE, CONNECT, RINGNOANSWER, COMPLETE*,
//! ABANDON, BLINDTRANSFER, EXIT*, FULL, JOINUNAVAIL, AGENTLOGIN/OFF, PAUSE/UNPAUSE.
//! Nothing here touches a file: [`QueueLogFold::poll`] hands the lines to
//! the writer thread.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::acd::DivertReason;
use crate::events::{CallRef, Event, EventKind};

use super::HangupBy;

/// One line of Asterisk's queue_log:
/// `epoch|callid|queue|agent|event|data1|data2|...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLogLine {
    pub at: SystemTime,
    pub call_id: String,
    pub queue: String,
    pub agent: String,
    pub event: &'static str,
    pub data: Vec<String>,
}

impl QueueLogLine {
    /// The line as Asterisk writes it, without the newline. `|` and
    /// control characters in fields (a Call-ID, a pause reason) become
    /// spaces, so no field can forge another field or line.
    pub fn format(&self) -> String {
        let epoch = self
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| if c == '|' || c.is_control() { ' ' } else { c })
                .collect()
        };
        let mut out = format!(
            "{epoch}|{}|{}|{}|{}",
            clean(&self.call_id),
            clean(&self.queue),
            clean(&self.agent),
            self.event
        );
        for d in &self.data {
            out.push('|');
            out.push_str(&clean(d));
        }
        out
    }
}

/// The callers waiting in each queue on every shard, by arrival, so that
/// queue_log positions count them all, not only the callers of the shard
/// that writes the line. Shared by the shards' folds behind one mutex,
/// taken when a caller enters, is answered or leaves.
#[derive(Debug, Default, Clone)]
pub struct WaitingBoard {
    queues: Arc<Mutex<Boards>>,
}

/// Per queue, its waiting callers by (entered, event-stream number).
type Boards = HashMap<String, BTreeSet<(Instant, u64)>>;

impl WaitingBoard {
    /// Puts `seq` on `queue`'s board; its place (1 = next served).
    fn join(&self, queue: &str, entered: Instant, seq: u64) -> usize {
        let mut q = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let set = q.entry(queue.to_owned()).or_default();
        set.insert((entered, seq));
        set.len()
    }

    /// Takes `seq` off and returns its place (1 = next served, by arrival).
    fn leave(&self, queue: &str, entered: Instant, seq: u64) -> usize {
        let mut q = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(set) = q.get_mut(queue) else {
            return 1;
        };
        let me = (entered, seq);
        let ahead = set.range(..&me).count();
        set.remove(&me);
        if set.is_empty() {
            q.remove(queue);
        }
        ahead + 1
    }
}

/// A caller's stay in its current queue.
#[derive(Debug)]
struct Stay {
    queue: String,
    entered: Instant,
    origpos: usize,
    /// Agent and when its phone started ringing.
    offered: Option<Instant>,
    /// Agent and when it answered.
    answered: Option<(String, Instant)>,
    /// Still on the shared board (not answered yet).
    on_board: bool,
}

/// The lines of one shard's calls and agents.
#[derive(Debug, Default)]
pub struct QueueLogFold {
    board: WaitingBoard,
    stays: HashMap<CallRef, Stay>,
    logged_in: HashSet<String>,
    out: VecDeque<QueueLogLine>,
}

const NONE: &str = "NONE";

fn secs(d: Duration) -> String {
    d.as_secs().to_string()
}

impl QueueLogFold {
    /// A fold counting positions on `board` (one board for all shards).
    pub fn new(board: WaitingBoard) -> QueueLogFold {
        QueueLogFold {
            board,
            ..QueueLogFold::default()
        }
    }

    /// Next line for the writer.
    pub fn poll(&mut self) -> Option<QueueLogLine> {
        self.out.pop_front()
    }

    fn line(
        &mut self,
        at: SystemTime,
        call: &str,
        queue: &str,
        agent: &str,
        event: &'static str,
        data: Vec<String>,
    ) {
        self.out.push_back(QueueLogLine {
            at,
            call_id: call.to_owned(),
            queue: queue.to_owned(),
            agent: agent.to_owned(),
            event,
            data,
        });
    }

    /// AGENTLOGIN or AGENTLOGOFF when `agent`'s login changes.
    fn login_line(&mut self, at: SystemTime, agent: &str, logged_in: bool) {
        let changed = if logged_in {
            self.logged_in.insert(agent.to_owned())
        } else {
            self.logged_in.remove(agent)
        };
        if changed {
            let event = if logged_in {
                "AGENTLOGIN"
            } else {
                "AGENTLOGOFF"
            };
            self.line(at, NONE, NONE, agent, event, vec![]);
        }
    }

    fn leave_board(&self, call: &CallRef, stay: &mut Stay) -> usize {
        if !stay.on_board {
            return 1;
        }
        stay.on_board = false;
        self.board.leave(&stay.queue, stay.entered, call.seq)
    }

    pub fn fold(&mut self, ev: &Event) {
        let (wall, mono) = (ev.at.wall, ev.at.mono);
        match &ev.kind {
            EventKind::Queued {
                call,
                queue,
                caller,
                refused,
                ..
            } => {
                match refused {
                    Some(DivertReason::MaxWaiting) => {
                        return self.line(wall, &call.call_id, queue, NONE, "FULL", vec![]);
                    }
                    Some(DivertReason::Closed) => {
                        return self.line(wall, &call.call_id, queue, NONE, "JOINUNAVAIL", vec![]);
                    }
                    _ => {}
                }
                if let Some(mut old) = self.stays.remove(call) {
                    self.leave_board(call, &mut old);
                }
                let origpos = self.board.join(queue, mono, call.seq);
                let stay = Stay {
                    queue: queue.clone(),
                    entered: mono,
                    origpos,
                    offered: None,
                    answered: None,
                    on_board: true,
                };
                self.stays.insert(call.clone(), stay);
                let data = vec![String::new(), caller.clone(), origpos.to_string()];
                self.line(wall, &call.call_id, queue, NONE, "ENTERQUEUE", data);
            }
            EventKind::Diverted { call, reason, .. } => {
                let Some(mut stay) = self.stays.remove(call) else {
                    return; // refused on arrival: already logged
                };
                let pos = self.leave_board(call, &mut stay);
                let event = match reason {
                    DivertReason::Closed => "EXITEMPTY",
                    _ => "EXITWITHTIMEOUT",
                };
                let waited = secs(mono.saturating_duration_since(stay.entered));
                let data = vec![pos.to_string(), stay.origpos.to_string(), waited];
                self.line(wall, &call.call_id, &stay.queue, NONE, event, data);
            }
            EventKind::Offered { call, .. } => {
                if let Some(s) = self.stays.get_mut(call) {
                    s.offered = Some(mono);
                }
            }
            EventKind::RingNoAnswer {
                call, agent, rang, ..
            } => {
                let Some(s) = self.stays.get_mut(call) else {
                    return;
                };
                if s.offered.take().is_none() {
                    return;
                }
                let queue = s.queue.clone();
                let ms = rang.as_millis().to_string();
                self.line(wall, &call.call_id, &queue, agent, "RINGNOANSWER", vec![ms]);
            }
            EventKind::Answered {
                call,
                agent,
                agent_call_id,
                ..
            } => {
                let Some(mut s) = self.stays.remove(call) else {
                    return;
                };
                self.leave_board(call, &mut s);
                let hold = secs(mono.saturating_duration_since(s.entered));
                let ring = s
                    .offered
                    .map_or(0, |at| mono.saturating_duration_since(at).as_secs());
                s.answered = Some((agent.clone(), mono));
                let queue = s.queue.clone();
                self.stays.insert(call.clone(), s);
                let data = vec![hold, agent_call_id.clone(), ring.to_string()];
                self.line(wall, &call.call_id, &queue, agent, "CONNECT", data);
            }
            EventKind::Transferred {
                call, agent, to, ..
            } => {
                // Asterisk: BLINDTRANSFER|extension|context|holdtime|calltime|origposition.
                let Some(stay) = self.stays.remove(call) else {
                    return;
                };
                let Some((_, at)) = &stay.answered else {
                    return;
                };
                let hold = secs(at.saturating_duration_since(stay.entered));
                let talk = secs(mono.saturating_duration_since(*at));
                // Asterisk 12+: ATTENDEDTRANSFER|BRIDGE|target|holdtime|calltime|origposition.
                if let Some(target) = to.strip_prefix("attended:") {
                    let data = vec![
                        "BRIDGE".to_owned(),
                        target.to_owned(),
                        hold,
                        talk,
                        stay.origpos.to_string(),
                    ];
                    let (q, id) = (&stay.queue, &call.call_id);
                    return self.line(wall, id, q, agent, "ATTENDEDTRANSFER", data);
                }
                let (ext, ctx) = to.split_once(':').unwrap_or((to.as_str(), ""));
                let data = vec![
                    ctx.to_owned(),
                    ext.to_owned(),
                    hold,
                    talk,
                    stay.origpos.to_string(),
                ];
                self.line(
                    wall,
                    &call.call_id,
                    &stay.queue,
                    agent,
                    "BLINDTRANSFER",
                    data,
                );
            }
            // The caller left its place to a callback: it pressed a key to
            // leave the queue (Asterisk's EXITWITHKEY).
            EventKind::CallbackAccepted {
                call, key, position, ..
            } => {
                let Some(mut stay) = self.stays.remove(call) else {
                    return;
                };
                self.leave_board(call, &mut stay);
                let waited = secs(mono.saturating_duration_since(stay.entered));
                let data = vec![
                    key.to_string(),
                    position.to_string(),
                    stay.origpos.to_string(),
                    waited,
                ];
                self.line(wall, &call.call_id, &stay.queue, NONE, "EXITWITHKEY", data);
            }
            EventKind::Ended(end) => {
                let Some(mut stay) = self.stays.remove(&end.call) else {
                    return;
                };
                let pos = self.leave_board(&end.call, &mut stay);
                let call_id = &end.call.call_id;
                match &stay.answered {
                    Some((agent, at)) => {
                        let event = if end.hangup_by == HangupBy::Agent {
                            "COMPLETEAGENT"
                        } else {
                            "COMPLETECALLER"
                        };
                        let hold = secs(at.saturating_duration_since(stay.entered));
                        let talk = secs(mono.saturating_duration_since(*at));
                        let data = vec![hold, talk, stay.origpos.to_string()];
                        let agent = agent.clone();
                        self.line(wall, call_id, &stay.queue, &agent, event, data);
                    }
                    None => {
                        let waited = secs(mono.saturating_duration_since(stay.entered));
                        let data = vec![pos.to_string(), stay.origpos.to_string(), waited];
                        self.line(wall, call_id, &stay.queue, NONE, "ABANDON", data);
                    }
                }
            }
            // Logged in: the phone is reachable and the agent did not log
            // itself off with its logout code (AGENTLOGIN/OFF once each).
            EventKind::AgentReachable {
                agent,
                reachable,
                logged_off,
            } => self.login_line(wall, agent, *reachable && !*logged_off),
            EventKind::AgentLogin { agent, logged_in } => self.login_line(wall, agent, *logged_in),
            EventKind::AgentPaused { agent, reason } => match reason {
                Some(r) => self.line(wall, NONE, NONE, agent, "PAUSE", vec![r.clone()]),
                None => self.line(wall, NONE, NONE, agent, "UNPAUSE", vec![]),
            },
            EventKind::Arrived { .. }
            | EventKind::Rejected { .. }
            | EventKind::IvrStep { .. }
            | EventKind::IvrClosed { .. }
            | EventKind::AgentState { .. }
            | EventKind::RecordingStarted { .. }
            | EventKind::Monitor { .. }
            | EventKind::RecordingEnded { .. }
            // The transferor's BLINDTRANSFER line was written already.
            | EventKind::TrunkBridged { .. }
            // After an attended transfer the caller's stay was closed by
            // its ATTENDEDTRANSFER line, as Asterisk logs it.
            | EventKind::Joined { .. }
            | EventKind::VoicemailStarted { .. }
            | EventKind::VoicemailEnded { .. }
            | EventKind::SurveyStarted { .. }
            | EventKind::CsatScored { .. }
            | EventKind::CallbackOffered { .. }
            | EventKind::CallbackAttempt { .. }
            | EventKind::CallbackResult { .. }
            | EventKind::CallbackCancelled { .. }
            | EventKind::CallbackRestored { .. }
            | EventKind::Trunk { .. } => {}
        }
    }
}
