//! Agents and queues by small typed ids: an index into the name table of
//! the configuration in force, so that the router's structures hold a
//! `u32` where they would hold a `String`, and an agent's id can never be
//! passed where a queue's is wanted. Names are looked up at the edges only
//! (an event that names an agent, the admin API, a REGISTER's user).
//!
//! A reload builds a new table: an id is only meaningful with the table it
//! came from. What must survive a reload (an agent's state and counters,
//! a waiting caller's queue) is carried across by name.

use std::collections::HashMap;
use std::sync::Arc;

/// An agent of one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(u32);

/// A queue of one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(u32);

impl AgentId {
    /// No agent of any table (a call whose agent vanished in a reload).
    pub(crate) const NONE: AgentId = AgentId(u32::MAX);

    pub(crate) const fn from_index(i: u32) -> AgentId {
        AgentId(i)
    }

    /// Its place in the table (and in the router's agent array).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub(crate) fn raw(self) -> u32 {
        self.0
    }
}

impl QueueId {
    /// No queue of any table (a call whose queue vanished in a reload).
    pub(crate) const NONE: QueueId = QueueId(u32::MAX);

    pub(crate) const fn from_index(i: u32) -> QueueId {
        QueueId(i)
    }

    /// Its place in the table (and in the router's queue array).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One half of the table: names by id, ids by name.
#[derive(Debug, Clone, Default)]
struct Interner {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Interner {
    /// The id of `name`, a new one if it is not in the table yet.
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, i);
        i
    }
}

/// The agents' and queues' names of one configuration, by id.
#[derive(Debug, Clone, Default)]
pub struct Names {
    agents: Interner,
    queues: Interner,
}

impl Names {
    pub(crate) fn intern_agent(&mut self, name: &str) -> AgentId {
        AgentId(self.agents.intern(name))
    }

    pub(crate) fn intern_queue(&mut self, name: &str) -> QueueId {
        QueueId(self.queues.intern(name))
    }

    pub fn agent(&self, name: &str) -> Option<AgentId> {
        self.agents.ids.get(name).copied().map(AgentId)
    }

    pub fn queue(&self, name: &str) -> Option<QueueId> {
        self.queues.ids.get(name).copied().map(QueueId)
    }

    pub fn agent_name(&self, id: AgentId) -> Option<&Arc<str>> {
        self.agents.names.get(id.index())
    }

    pub fn queue_name(&self, id: QueueId) -> Option<&Arc<str>> {
        self.queues.names.get(id.index())
    }

    /// The id of the agent `agent` names in this table: its id when that
    /// still names it, else its name's.
    pub fn resolve(&self, agent: AgentRef<'_>) -> Option<AgentId> {
        match agent {
            AgentRef::Id(id, name) if self.agent_name(id).is_some_and(|n| &**n == name) => Some(id),
            other => self.agent(other.name()),
        }
    }

    pub fn agent_count(&self) -> usize {
        self.agents.names.len()
    }
}

/// What the last reload did to the ids: each old agent's and queue's id
/// in the new table (`NONE` when it is gone), and the reload's number. A
/// structure keyed by ids outside the router ([`crate::acd::estimate`],
/// the engine's last reported agent states) follows it: when its
/// generation is one behind it moves each entry to its new id, when it is
/// further behind (never, as reloads go) it starts over.
#[derive(Debug, Clone, Default)]
pub struct Renumbering {
    generation: u64,
    agents: Vec<AgentId>,
    queues: Vec<QueueId>,
}

impl Renumbering {
    /// From table `old` to table `new`, as reload number `generation`.
    pub(crate) fn between(old: &Names, new: &Names, generation: u64) -> Renumbering {
        Renumbering {
            generation,
            agents: (old.agents.names.iter())
                .map(|n| new.agent(n).unwrap_or(AgentId::NONE))
                .collect(),
            queues: (old.queues.names.iter())
                .map(|n| new.queue(n).unwrap_or(QueueId::NONE))
                .collect(),
        }
    }

    /// How many reloads the router has had.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The new id of the agent that had `old`.
    pub fn agent(&self, old: AgentId) -> Option<AgentId> {
        self.agents
            .get(old.index())
            .copied()
            .filter(|a| *a != AgentId::NONE)
    }

    /// The new id of the queue that had `old`.
    pub fn queue(&self, old: QueueId) -> Option<QueueId> {
        self.queues
            .get(old.index())
            .copied()
            .filter(|q| *q != QueueId::NONE)
    }
}

/// How an event names an agent: by name, or by the id the router gave
/// it together with its name. An id kept from before a reload may belong
/// to another agent now: the router checks it against the name and looks
/// the name up when it no longer matches, so a stale id costs a lookup,
/// never a wrong agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRef<'a> {
    Name(&'a str),
    Id(AgentId, &'a str),
}

impl<'a> AgentRef<'a> {
    pub fn name(self) -> &'a str {
        match self {
            AgentRef::Name(n) | AgentRef::Id(_, n) => n,
        }
    }
}

impl<'a> From<&'a str> for AgentRef<'a> {
    fn from(n: &'a str) -> Self {
        AgentRef::Name(n)
    }
}

impl<'a> From<&'a String> for AgentRef<'a> {
    fn from(n: &'a String) -> Self {
        AgentRef::Name(n)
    }
}

impl<'a> From<&'a Arc<str>> for AgentRef<'a> {
    fn from(n: &'a Arc<str>) -> Self {
        AgentRef::Name(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let mut n = Names::default();
        let a = n.intern_agent("alice");
        let b = n.intern_agent("bob");
        assert_ne!(a, b);
        assert_eq!(
            n.intern_agent("alice"),
            a,
            "interning again gives the same id"
        );
        assert_eq!(n.agent("bob"), Some(b));
        assert_eq!(n.agent("carol"), None);
        assert_eq!(n.agent_name(a).map(|s| &**s), Some("alice"));
        assert_eq!(n.agent_count(), 2);
        // An id that names another agent now resolves by the name.
        assert_eq!(n.resolve(AgentRef::Id(a, "alice")), Some(a));
        assert_eq!(n.resolve(AgentRef::Id(a, "bob")), Some(b));
        assert_eq!(n.resolve(AgentRef::Id(AgentId::NONE, "alice")), Some(a));
        assert_eq!(n.resolve(AgentRef::Name("carol")), None);
        // Queues have their own numbering: a queue named like an agent is
        // another thing.
        let q = n.intern_queue("alice");
        assert_eq!(q.index(), 0);
        assert_eq!(n.queue("alice"), Some(q));
        assert_eq!(n.queue("bob"), None);
        assert_eq!(n.queue_name(q).map(|s| &**s), Some("alice"));
        assert_eq!(n.agent_count(), 2);
    }

    #[test]
    fn a_renumbering_maps_each_old_id_to_its_names_new_one() {
        let mut old = Names::default();
        let (a, b) = (old.intern_agent("alice"), old.intern_agent("bob"));
        let q = old.intern_queue("sales");
        let mut new = Names::default();
        let b2 = new.intern_agent("bob");
        let q2 = new.intern_queue("sales");
        let r = Renumbering::between(&old, &new, 4);
        assert_eq!(r.generation(), 4);
        assert_eq!(r.agent(b), Some(b2));
        assert_eq!(r.agent(a), None, "alice is gone");
        assert_eq!(r.agent(AgentId::NONE), None);
        assert_eq!(r.queue(q), Some(q2));
        assert_eq!(r.queue(QueueId::from_index(7)), None);
    }
}
