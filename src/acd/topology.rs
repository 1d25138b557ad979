//! The routing structure derived from the config: queues, their lanes (one
//! per relax level), the pools of eligible agents, and each agent's links.
//! Rebuilt on reload; eligibility is computed once here, never per decision.

use super::agent::{Links, Meta, PoolLink, Slot, Word};
use super::ids::{AgentId, Names, QueueId};
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
    pub agents: Vec<AgentId>,
}

#[derive(Debug)]
pub(crate) struct Topology {
    /// Side by side (no pointer to chase per agent).
    /// Indexed by `AgentId` (agents kept past a reload while busy are
    /// appended), as `queues` by `QueueId`.
    pub agents: Vec<Slot>,
    pub queues: Vec<QueueRt>,
    /// The ids' names.
    pub names: Names,
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
        let skills = SkillIndex::new(&agent_cfgs);
        let mut pool_ids: BTreeMap<(u8, BTreeMap<String, u8>), u32> = BTreeMap::new();
        let mut pools = Vec::new();
        let mut pool_agents: Vec<Vec<u32>> = Vec::new();
        let mut pool_scores: Vec<Vec<u32>> = Vec::new();
        let mut lanes = Vec::new();
        let mut lane_pool = Vec::new();
        let mut queues = Vec::new();
        let mut names = Names::default();
        for q in cfg.queues.values() {
            let mut qlanes = Vec::new();
            for level in 0..=q.relax.len() {
                let req = required_skills(q, level);
                let key = (q.strategy as u8, req);
                let pid = match pool_ids.get(&key) {
                    Some(p) => *p,
                    None => {
                        let p = pools.len() as u32;
                        let (members, scores) =
                            skills.members(agent_cfgs.len(), &key.1).into_iter().unzip();
                        pools.push(Pool::new(q.strategy, Vec::clone(&members)));
                        pool_agents.push(members);
                        pool_scores.push(scores);
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
                .map(|m| m.iter().map(|&a| AgentId::from_index(a)).collect())
                .unwrap_or_default();
            let qi = names.intern_queue(&q.name);
            queues.push(QueueRt {
                name: names
                    .queue_name(qi)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("")),
                cfg: q.clone(),
                lanes: qlanes,
                waiting: AtomicUsize::new(0),
                agents,
            });
        }
        // Every agent's links side by side, in ascending pool order: count
        // them per agent, then place each pool's members (pools in order)
        // at their agent's next free place.
        let mut links: Vec<Links> = vec![Links::default(); agent_cfgs.len()];
        for &a in pool_agents.iter().flatten() {
            if let Some(l) = links.get_mut(a as usize) {
                l.pools.end += 1;
            }
        }
        let mut start = 0u32;
        for l in &mut links {
            let n = l.pools.end;
            l.pools = start..start;
            start += n;
        }
        let mut pool_links: Vec<PoolLink> = (0..start)
            .map(|_| PoolLink {
                pool: 0,
                member: 0,
                score: 0,
                pos: AtomicU32::new(u32::MAX),
            })
            .collect();
        for (p, (members, scores)) in pool_agents.iter().zip(&pool_scores).enumerate() {
            for (m, (&a, &score)) in members.iter().zip(scores).enumerate() {
                let Some(l) = links.get_mut(a as usize) else {
                    continue;
                };
                if let Some(slot) = pool_links.get_mut(l.pools.end as usize) {
                    slot.pool = p as u32;
                    slot.member = m as u32;
                    slot.score = score;
                    l.pools.end += 1;
                }
            }
        }
        for (li, p) in lane_pool.iter().enumerate() {
            for &a in pool_agents.get(*p as usize).map_or(&[][..], |v| v) {
                if let Some(l) = links.get_mut(a as usize) {
                    l.lanes.push(li as u32);
                }
            }
        }
        let mut agents = Vec::new();
        for (a, l) in agent_cfgs.iter().zip(links) {
            let (word, meta) = carry(&a.id).unwrap_or_else(|| {
                (
                    Word {
                        epoch: 0,
                        tag: super::agent::Tag::LoggedOut,
                    },
                    Meta::default(),
                )
            });
            let i = names.intern_agent(&a.id);
            agents.push(Slot::new(
                names
                    .agent_name(i)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("")),
                (*a).clone(),
                i,
                l,
                word,
                meta,
            ));
        }
        Topology {
            agents,
            queues,
            names,
            pools,
            pool_links,
            lanes,
            schedules: cfg.schedules.clone(),
        }
    }

    pub(crate) fn agent(&self, id: &str) -> Option<&Slot> {
        self.names.agent(id).and_then(|i| self.slot(i))
    }

    pub(crate) fn slot(&self, id: AgentId) -> Option<&Slot> {
        self.agents.get(id.index())
    }

    pub(crate) fn queue(&self, name: &str) -> Option<(QueueId, &QueueRt)> {
        let i = self.names.queue(name)?;
        self.queue_rt(i).map(|q| (i, q))
    }

    pub(crate) fn queue_rt(&self, id: QueueId) -> Option<&QueueRt> {
        self.queues.get(id.index())
    }

    pub(crate) fn lane_of(&self, queue: QueueId, level: usize) -> Option<(u32, &Lane)> {
        let li = *self.queue_rt(queue)?.lanes.get(level)?;
        self.lanes.get(li as usize).map(|l| (li, l))
    }
}

/// Skill names as small integers and, per skill, its holders with their
/// levels in agent order, so that a pool's members are found by merging
/// sorted lists: with string keys and an eligibility test per candidate, a
/// reload at 100,000 agents and 1,000 queues spent seconds (about ten
/// million tests, each a few `memcmp` and cache misses) with every shard
/// parked.
struct SkillIndex<'a> {
    ids: HashMap<&'a str, u32>,
    /// Per skill id: (agent, level), ascending by agent.
    holders: Vec<Vec<(u32, u8)>>,
}

impl<'a> SkillIndex<'a> {
    fn new(agents: &[&'a Agent]) -> SkillIndex<'a> {
        let mut ix = SkillIndex {
            ids: HashMap::new(),
            holders: Vec::new(),
        };
        for (a, ac) in agents.iter().enumerate() {
            for (name, level) in &ac.skills {
                let next = ix.ids.len() as u32;
                let id = *ix.ids.entry(name.as_str()).or_insert(next);
                if id == next {
                    ix.holders.push(Vec::new());
                }
                if let Some(h) = ix.holders.get_mut(id as usize) {
                    h.push((a as u32, *level));
                }
            }
        }
        ix
    }

    /// The agents with every skill of `req` at least at its level, in
    /// index order (round robin walks it), each with the sum of its levels
    /// in those skills (`most_skilled`'s score). Starts from the rarest
    /// skill's holders and merges in the others' lists.
    fn members(&self, agents: usize, req: &BTreeMap<String, u8>) -> Vec<(u32, u32)> {
        let mut lists = Vec::with_capacity(req.len());
        for (skill, min) in req {
            match self
                .ids
                .get(skill.as_str())
                .and_then(|id| self.holders.get(*id as usize))
            {
                Some(h) => lists.push((h.as_slice(), *min)),
                None => return Vec::new(), // nobody has it
            }
        }
        lists.sort_by_key(|(h, _)| h.len());
        let mut lists = lists.into_iter();
        let Some((first, min)) = lists.next() else {
            return (0..agents as u32).map(|a| (a, 0)).collect();
        };
        let mut cur: Vec<(u32, u32)> = first
            .iter()
            .filter(|(_, l)| *l >= min)
            .map(|(a, l)| (*a, u32::from(*l)))
            .collect();
        for (list, min) in lists {
            // Both ascending by agent: one pass over each.
            let mut j = 0;
            let mut kept = 0;
            for i in 0..cur.len() {
                let (a, score) = cur[i];
                while j < list.len() && list[j].0 < a {
                    j += 1;
                }
                if let Some(&(b, l)) = list.get(j) {
                    if b == a && l >= min {
                        cur[kept] = (a, score + u32::from(l));
                        kept += 1;
                    }
                }
            }
            cur.truncate(kept);
        }
        cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agent(i: usize, skills: BTreeMap<String, u8>) -> Agent {
        Agent {
            id: format!("a{i:03}"),
            name: String::new(),
            credential: None,
            skills,
            timezone: chrono_tz::UTC,
            shift: vec![],
            contact: None,
            media_encryption: Default::default(),
        }
    }

    fn skill_map() -> impl Strategy<Value = BTreeMap<String, u8>> {
        prop::collection::btree_map((0u8..6).prop_map(|s| format!("s{s}")), 0u8..4, 0..4)
    }

    proptest! {
        /// The merged lists find exactly the agents the plain string test
        /// finds, in index order, with the same scores.
        #[test]
        fn members_match_the_plain_eligibility_test(
            skills in prop::collection::vec(skill_map(), 0..40),
            req in skill_map(),
        ) {
            let agents: Vec<Agent> =
                skills.into_iter().enumerate().map(|(i, s)| agent(i, s)).collect();
            let refs: Vec<&Agent> = agents.iter().collect();
            let want: Vec<(u32, u32)> = agents
                .iter()
                .enumerate()
                .filter(|(_, a)| eligible(a, &req))
                .map(|(i, a)| (i as u32, skill_score(a, &req)))
                .collect();
            prop_assert_eq!(SkillIndex::new(&refs).members(agents.len(), &req), want);
        }
    }
}
