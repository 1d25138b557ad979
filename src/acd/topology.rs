//! The routing structure derived from the config: queues, their lanes (one
//! per relax level), the pools of eligible agents, and each agent's links.
//! Rebuilt on reload; eligibility is computed once here, never per decision.

use super::agent::{Links, Meta, PoolLink, Slot, Word};
use super::lane::Lane;
use super::pool::Pool;
use crate::config::{Agent, Config, Queue, Schedule};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::sync::Arc;

/// The parts of the configuration the router uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcdConfig {
    pub agents: BTreeMap<String, Agent>,
    pub queues: BTreeMap<String, Queue>,
    pub schedules: BTreeMap<String, Schedule>,
}

impl From<&Config> for AcdConfig {
    fn from(c: &Config) -> Self {
        AcdConfig {
            agents: c.agents.clone(),
            queues: c.queues.clone(),
            schedules: c.schedules.clone(),
        }
    }
}

/// The skills a caller of `q` accepts at relax `level`: each step lowers the
/// minimums it names, on top of the steps before it.
pub fn required_skills(q: &Queue, level: usize) -> BTreeMap<String, u8> {
    let mut req = q.skills.clone();
    for r in q.relax.iter().take(level) {
        for (s, l) in &r.skills {
            req.insert(s.clone(), *l);
        }
    }
    req
}

/// Whether `agent` has every skill of `req` at least at its level.
pub fn eligible(agent: &Agent, req: &BTreeMap<String, u8>) -> bool {
    req.iter()
        .all(|(s, min)| agent.skills.get(s).is_some_and(|l| l >= min))
}

/// Sum of the agent's levels in the required skills (`most_skilled`).
pub fn skill_score(agent: &Agent, req: &BTreeMap<String, u8>) -> u32 {
    req.keys()
        .filter_map(|s| agent.skills.get(s))
        .map(|l| u32::from(*l))
        .sum()
}

#[derive(Debug)]
pub(crate) struct QueueRt {
    pub name: Arc<str>,
    pub cfg: Queue,
    /// Lane index per relax level (0 = no relax).
    pub lanes: Vec<u32>,
    pub waiting: AtomicUsize,
    /// Agents eligible at level 0 (status only).
    pub agents: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct Topology {
    /// Side by side (no pointer to chase per agent).
    pub agents: Vec<Slot>,
    pub agent_by_id: HashMap<String, u32>,
    pub queues: Vec<QueueRt>,
    pub queue_by_name: HashMap<String, u32>,
    pub pools: Vec<Pool>,
    /// Every agent's pool links, an agent's side by side (`Links::pools`).
    pub pool_links: Vec<PoolLink>,
    pub lanes: Vec<Lane>,
    pub schedules: BTreeMap<String, Schedule>,
}

impl Topology {
    /// `carry(id)` gives a surviving agent's word and meta.
    pub(crate) fn build(cfg: &AcdConfig, carry: impl Fn(&str) -> Option<(Word, Meta)>) -> Topology {
        let agent_cfgs: Vec<&Agent> = cfg.agents.values().collect();
        // Inverted index: skill -> (agent, level), to find a pool's agents
        // from its rarest skill instead of testing every agent.
        let mut by_skill: HashMap<&str, Vec<(u32, u8)>> = HashMap::new();
        for (i, a) in agent_cfgs.iter().enumerate() {
            for (s, l) in &a.skills {
                by_skill.entry(s.as_str()).or_default().push((i as u32, *l));
            }
        }
        let mut pool_ids: BTreeMap<(u8, BTreeMap<String, u8>), u32> = BTreeMap::new();
        let mut pools = Vec::new();
        let mut pool_agents: Vec<Vec<u32>> = Vec::new();
        let mut lanes = Vec::new();
        let mut lane_pool = Vec::new();
        let mut queues = Vec::new();
        let mut queue_by_name = HashMap::new();
        for (qi, q) in cfg.queues.values().enumerate() {
            let mut qlanes = Vec::new();
            for level in 0..=q.relax.len() {
                let req = required_skills(q, level);
                let key = (q.strategy as u8, req);
                let pid = match pool_ids.get(&key) {
                    Some(p) => *p,
                    None => {
                        let p = pools.len() as u32;
                        let members = eligible_agents(&agent_cfgs, &by_skill, &key.1);
                        pools.push(Pool::new(q.strategy, key.1.clone(), members.clone()));
                        pool_agents.push(members);
                        pool_ids.insert(key, p);
                        p
                    }
                };
                qlanes.push(lanes.len() as u32);
                lane_pool.push(pid);
                lanes.push(Lane::new(pid, q.priority));
            }
            let agents = qlanes
                .first()
                .and_then(|l| lane_pool.get(*l as usize))
                .and_then(|p| pool_agents.get(*p as usize))
                .cloned()
                .unwrap_or_default();
            queue_by_name.insert(q.name.clone(), qi as u32);
            queues.push(QueueRt {
                name: Arc::from(q.name.as_str()),
                cfg: q.clone(),
                lanes: qlanes,
                waiting: AtomicUsize::new(0),
                agents,
            });
        }
        let mut links: Vec<Links> = vec![Links::default(); agent_cfgs.len()];
        let mut per_agent: Vec<Vec<PoolLink>> = (0..agent_cfgs.len()).map(|_| Vec::new()).collect();
        for (p, members) in pool_agents.iter().enumerate() {
            for (m, &a) in members.iter().enumerate() {
                if let (Some(l), Some(ac), Some(pool)) = (
                    per_agent.get_mut(a as usize),
                    agent_cfgs.get(a as usize),
                    pools.get(p),
                ) {
                    l.push(PoolLink {
                        pool: p as u32,
                        member: m as u32,
                        score: skill_score(ac, &pool.skills),
                        pos: AtomicU32::new(u32::MAX),
                    });
                }
            }
        }
        let mut pool_links = Vec::new();
        for (l, mine) in links.iter_mut().zip(per_agent) {
            let start = pool_links.len() as u32;
            pool_links.extend(mine);
            l.pools = start..pool_links.len() as u32;
        }
        for (li, p) in lane_pool.iter().enumerate() {
            for &a in pool_agents.get(*p as usize).map_or(&[][..], |v| v) {
                if let Some(l) = links.get_mut(a as usize) {
                    l.lanes.push(li as u32);
                }
            }
        }
        let mut agents = Vec::new();
        let mut agent_by_id = HashMap::new();
        for (i, (a, l)) in agent_cfgs.iter().zip(links).enumerate() {
            let (word, meta) = carry(&a.id).unwrap_or_else(|| {
                (
                    Word {
                        epoch: 0,
                        tag: super::agent::Tag::LoggedOut,
                    },
                    Meta::default(),
                )
            });
            agent_by_id.insert(a.id.clone(), i as u32);
            agents.push(Slot::new(
                Arc::from(a.id.as_str()),
                (*a).clone(),
                i as u32,
                l,
                word,
                meta,
            ));
        }
        Topology {
            agents,
            agent_by_id,
            queues,
            queue_by_name,
            pools,
            pool_links,
            lanes,
            schedules: cfg.schedules.clone(),
        }
    }

    pub(crate) fn agent(&self, id: &str) -> Option<&Slot> {
        self.agent_by_id
            .get(id)
            .and_then(|i| self.agents.get(*i as usize))
    }

    pub(crate) fn queue(&self, name: &str) -> Option<(u32, &QueueRt)> {
        let i = *self.queue_by_name.get(name)?;
        self.queues.get(i as usize).map(|q| (i, q))
    }

    pub(crate) fn lane_of(&self, queue: u32, level: usize) -> Option<(u32, &Lane)> {
        let li = *self.queues.get(queue as usize)?.lanes.get(level)?;
        self.lanes.get(li as usize).map(|l| (li, l))
    }
}

fn eligible_agents(
    agents: &[&Agent],
    by_skill: &HashMap<&str, Vec<(u32, u8)>>,
    req: &BTreeMap<String, u8>,
) -> Vec<u32> {
    let rarest = req
        .keys()
        .map(|s| by_skill.get(s.as_str()).map_or(&[][..], |v| v.as_slice()))
        .min_by_key(|v| v.len());
    let candidates: Vec<u32> = match rarest {
        None => (0..agents.len() as u32).collect(),
        Some(holders) => holders.iter().map(|(a, _)| *a).collect(),
    };
    let mut v: Vec<u32> = candidates
        .into_iter()
        .filter(|a| agents.get(*a as usize).is_some_and(|ac| eligible(ac, req)))
        .collect();
    // Member order is index order (round robin walks it).
    v.sort_unstable();
    v
}
