//! The allocator: which peers pin a CID, from the metrics peers broadcast. Pure: metrics and
//! injected time in, allocations out.
//!
//! Like ipfs-cluster's balanced allocator: candidates are the peers whose metric has not expired;
//! allocations are spread over the values of the configured tags first (e.g. `group`: one peer
//! per group before a second in any), then by the most free space, discounted by what this call
//! has already placed on the peer. User allocations come first when they are live; current live
//! allocations are kept. `replication_factor_min/max = -1` means every peer (no allocations).
//! A peer whose metric expired is down: `repairs` re-allocates the pins that fell below
//! `replication_factor_min` live allocations.

use std::collections::{BTreeMap, HashMap};

use cid::Cid;

use crate::limits::*;
use crate::state::PinSet;
use crate::types::{PeerKey, Pin, PinSpec};

/// Tags per metric.
pub const METRIC_TAGS_MAX: usize = 16;
/// Size of a tag key or value.
pub const METRIC_TAG_BYTES_MAX: usize = 128;
/// How long a metric is valid when its sender gives no TTL (ipfs-cluster: 30 s for freespace).
pub const METRIC_TTL_MS_DEFAULT: u64 = 30_000;

/// What a peer broadcasts about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    pub peer: PeerKey,
    pub free_bytes: u64,
    pub tags: BTreeMap<String, String>,
    /// The metric is valid until then; after it the peer counts as down.
    pub expire_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("need {needed} peers, {available} available")]
    NotEnoughPeers { needed: usize, available: usize },
    #[error("metric has {0} tags, more than {METRIC_TAGS_MAX}")]
    TooManyTags(usize),
    #[error("metric tag of {0} bytes, more than {METRIC_TAG_BYTES_MAX}")]
    TagTooLong(usize),
    #[error("already tracking {PEERS_TRACKED_MAX} peers")]
    TooManyPeers,
}

#[derive(Clone, Debug, Default)]
pub struct Allocator {
    metrics: BTreeMap<PeerKey, Metric>,
    /// Tag keys to spread over, most significant first (e.g. `["group"]`).
    pub spread_tags: Vec<String>,
}

impl Allocator {
    pub fn new(spread_tags: Vec<String>) -> Allocator {
        Allocator {
            metrics: BTreeMap::new(),
            spread_tags,
        }
    }

    /// Take a metric (the newest from a peer replaces the previous one).
    pub fn observe(&mut self, m: Metric) -> Result<(), AllocError> {
        if m.tags.len() > METRIC_TAGS_MAX {
            return Err(AllocError::TooManyTags(m.tags.len()));
        }
        if let Some(n) = m
            .tags
            .iter()
            .map(|(k, v)| k.len().max(v.len()))
            .find(|n| *n > METRIC_TAG_BYTES_MAX)
        {
            return Err(AllocError::TagTooLong(n));
        }
        if !self.metrics.contains_key(&m.peer) && self.metrics.len() >= PEERS_TRACKED_MAX {
            return Err(AllocError::TooManyPeers);
        }
        self.metrics.insert(m.peer, m);
        Ok(())
    }

    /// Forget expired metrics; returns the peers now considered down.
    pub fn expire(&mut self, now_ms: u64) -> Vec<PeerKey> {
        let down: Vec<PeerKey> = self
            .metrics
            .values()
            .filter(|m| m.expire_at_ms <= now_ms)
            .map(|m| m.peer)
            .collect();
        for p in &down {
            self.metrics.remove(p);
        }
        down
    }

    pub fn is_live(&self, p: &PeerKey, now_ms: u64) -> bool {
        self.metrics.get(p).is_some_and(|m| m.expire_at_ms > now_ms)
    }

    /// Live peers, in key order.
    pub fn live(&self, now_ms: u64) -> Vec<PeerKey> {
        self.metrics
            .values()
            .filter(|m| m.expire_at_ms > now_ms)
            .map(|m| m.peer)
            .collect()
    }

    fn group(&self, p: &PeerKey) -> Vec<String> {
        let tags = self.metrics.get(p).map(|m| &m.tags);
        self.spread_tags
            .iter()
            .map(|k| tags.and_then(|t| t.get(k)).cloned().unwrap_or_default())
            .collect()
    }

    /// Allocations for a pin, keeping `current` live ones. `load` counts pins already placed per
    /// peer during a batch (updated), to balance many allocations made at once.
    pub fn allocate(
        &self,
        spec: &PinSpec,
        current: &[PeerKey],
        now_ms: u64,
        load: &mut HashMap<PeerKey, u64>,
    ) -> Result<Vec<PeerKey>, AllocError> {
        if spec.replication_factor_min == -1 {
            return Ok(Vec::new());
        }
        let live = self.live(now_ms);
        let min = spec.replication_factor_min.max(1) as usize;
        let max = if spec.replication_factor_max == -1 {
            live.len().max(min)
        } else {
            spec.replication_factor_max as usize
        };
        let mut chosen: Vec<PeerKey> = Vec::new();
        for p in spec.user_allocations.iter().chain(current.iter()) {
            if chosen.len() < max && self.is_live(p, now_ms) && !chosen.contains(p) {
                chosen.push(*p);
            }
        }
        let mut per_group: HashMap<Vec<String>, usize> = HashMap::new();
        for p in &chosen {
            *per_group.entry(self.group(p)).or_default() += 1;
        }
        while chosen.len() < max {
            let best = live
                .iter()
                .filter(|p| !chosen.contains(p))
                .map(|p| {
                    let free = self.metrics.get(p).map_or(0, |m| m.free_bytes);
                    let placed = load.get(p).copied().unwrap_or(0);
                    let in_group = per_group.get(&self.group(p)).copied().unwrap_or(0);
                    // Fewest in its group first, then most free space per pin already placed.
                    (
                        std::cmp::Reverse(in_group),
                        free / (1 + placed),
                        std::cmp::Reverse(*p),
                    )
                })
                .max();
            let Some((_, _, std::cmp::Reverse(p))) = best else {
                break;
            };
            *per_group.entry(self.group(&p)).or_default() += 1;
            chosen.push(p);
        }
        if chosen.len() < min {
            return Err(AllocError::NotEnoughPeers {
                needed: min,
                available: chosen.len(),
            });
        }
        for p in &chosen {
            *load.entry(*p).or_default() += 1;
        }
        Ok(chosen)
    }

    /// Pins with fewer than `replication_factor_min` live allocations, re-allocated (to be
    /// written as pins by the peer that allocates). Sorted by CID; pins that cannot be repaired
    /// (not enough live peers) are left as they are.
    pub fn repairs(&self, set: &PinSet, now_ms: u64) -> Vec<Pin> {
        let mut load: HashMap<PeerKey, u64> = HashMap::new();
        let mut todo: Vec<(&Cid, &PinSpec)> = set
            .iter()
            .filter(|(_, s)| !s.allocations.is_empty() && s.replication_factor_min > 0)
            .filter(|(_, s)| {
                s.allocations
                    .iter()
                    .filter(|p| self.is_live(p, now_ms))
                    .count()
                    < s.replication_factor_min as usize
            })
            .collect();
        todo.sort_by_key(|(c, _)| c.to_bytes());
        let mut out = Vec::new();
        for (cid, spec) in todo {
            let live_current: Vec<PeerKey> = spec
                .allocations
                .iter()
                .copied()
                .filter(|p| self.is_live(p, now_ms))
                .collect();
            if let Ok(new) = self.allocate(spec, &live_current, now_ms, &mut load) {
                if new != spec.allocations {
                    out.push(Pin {
                        cid: *cid,
                        spec: PinSpec {
                            allocations: new,
                            ..spec.clone()
                        },
                    });
                }
            }
        }
        out
    }
}
