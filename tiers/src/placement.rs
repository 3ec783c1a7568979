//! Placement policy: where each block should live, decided from heat, capacity, latency and cost.
//!
//! Pure: no I/O, no clock (the caller passes `now_ms`). The policy reads a snapshot of block
//! statistics and tier states and answers decisions as data, a `Vec<Move>`, which a mover
//! ([`crate::tiered::TieredBlockstore::execute`]) carries out safely (copy, confirm, then delete).
//!
//! Rules:
//! - eviction order is the design's: memory cache → local → cluster peers → S3 → Storacha →
//!   Filecoin ([`TierKind::EVICTION_ORDER`]); a block only moves to a colder configured tier;
//! - pinned blocks are never demoted out of the local store by the policy (an explicit
//!   `tier move` may); hot blocks stay local;
//! - a block is demoted when it is cold (heat at or below `cold_heat_max` and idle for
//!   `demote_idle_ms_min`), or, while the local store is above its high watermark, coldest first
//!   until the low watermark is reached;
//! - the target among colder tiers: the lowest latency for a block that is merely cold, the
//!   lowest cost for a frozen one (heat at or below `frozen_heat_max`); a tier without room or
//!   not writable is skipped;
//! - a block that is not local is promoted back when it is hot again or accessed
//!   ([`on_access`]), if the local store has room below its high watermark; the remote copy is
//!   kept (demoting it again then costs nothing but a local delete).

use std::collections::HashMap;

use cid::Cid;

use crate::tier::TierKind;

/// A set of tiers (which tiers hold a block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TierSet(u8);

impl TierSet {
    pub const EMPTY: TierSet = TierSet(0);

    fn bit(kind: TierKind) -> u8 {
        1 << (kind as u8)
    }
    pub fn of(kinds: &[TierKind]) -> Self {
        let mut s = Self::EMPTY;
        for k in kinds {
            s.insert(*k);
        }
        s
    }
    pub fn insert(&mut self, kind: TierKind) {
        self.0 |= Self::bit(kind);
    }
    pub fn remove(&mut self, kind: TierKind) {
        self.0 &= !Self::bit(kind);
    }
    pub fn contains(self, kind: TierKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The members, hottest first.
    pub fn iter(self) -> impl Iterator<Item = TierKind> {
        TierKind::EVICTION_ORDER
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

/// What the policy knows of one block.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockStats {
    pub cid: Cid,
    pub size_bytes: u64,
    pub pinned: bool,
    /// Heat as the cache reports it (recency and frequency; higher is hotter, 0 is cold).
    pub heat: f64,
    /// When it was last read or written (ms since the epoch; 0 if never).
    pub last_access_ms: u64,
    /// Tiers holding a copy.
    pub locations: TierSet,
}

/// What the policy knows of one configured tier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TierState {
    pub kind: TierKind,
    /// `None`: unbounded (S3).
    pub capacity_bytes: Option<u64>,
    pub used_bytes: u64,
    /// Typical latency of one block read.
    pub latency_ms: u32,
    /// Storage cost in millionths of a currency unit per GiB-month.
    pub cost_micros_per_gib_month: u64,
    /// False for slots that cannot store yet (Storacha, Filecoin) or tiers in outage.
    pub writable: bool,
}

impl TierState {
    fn room_bytes(&self) -> u64 {
        match self.capacity_bytes {
            None => u64::MAX,
            Some(c) => c.saturating_sub(self.used_bytes),
        }
    }
}

/// Thresholds of the policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PolicyConfig {
    /// A non-local block at or above this heat is promoted back.
    pub hot_heat_min: f64,
    /// A local block at or below this heat, idle long enough, is demoted.
    pub cold_heat_max: f64,
    /// At or below this heat a block goes to the cheapest colder tier, not the fastest.
    pub frozen_heat_max: f64,
    /// A block must be idle this long before it is demoted for being cold.
    pub demote_idle_ms_min: u64,
    /// Above this share of its capacity (per mille) the local store sheds its coldest blocks.
    pub local_high_watermark_permille: u32,
    /// ... down to this share.
    pub local_low_watermark_permille: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            hot_heat_min: 4.0,
            cold_heat_max: 1.0,
            frozen_heat_max: 0.0,
            demote_idle_ms_min: 24 * 3600 * 1000,
            local_high_watermark_permille: 900,
            local_low_watermark_permille: 800,
        }
    }
}

/// One decision: copy `cid` from `from` to `to`, and drop the copy in `from` once `to` has
/// acknowledged it when `delete_source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub cid: Cid,
    pub size_bytes: u64,
    pub from: TierKind,
    pub to: TierKind,
    pub delete_source: bool,
    pub reason: MoveReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveReason {
    /// Cold and idle.
    Cold,
    /// The local store is above its high watermark.
    Capacity,
    /// Hot again.
    Hot,
    /// Read while not local.
    Access,
    /// Asked for (`tier move`).
    Explicit,
}

fn permille(capacity: u64, permille: u32) -> u64 {
    (u128::from(capacity) * u128::from(permille) / 1000) as u64
}

/// The colder tier a block leaving `from` should go to, given room left per tier.
fn demotion_target(
    from: TierKind,
    block: &BlockStats,
    tiers: &[TierState],
    room: &HashMap<TierKind, u64>,
    config: &PolicyConfig,
) -> Option<TierKind> {
    let frozen = block.heat <= config.frozen_heat_max;
    tiers
        .iter()
        .filter(|t| t.kind > from && t.writable)
        .filter(|t| {
            block.locations.contains(t.kind)
                || room.get(&t.kind).copied().unwrap_or(0) >= block.size_bytes
        })
        .min_by_key(|t| {
            // A tier that already holds the block costs nothing to move to.
            let held = !block.locations.contains(t.kind);
            if frozen {
                (
                    held,
                    t.cost_micros_per_gib_month,
                    u64::from(t.latency_ms),
                    t.kind,
                )
            } else {
                (
                    held,
                    u64::from(t.latency_ms),
                    t.cost_micros_per_gib_month,
                    t.kind,
                )
            }
        })
        .map(|t| t.kind)
}

/// Plans the moves for a snapshot of blocks and tiers. Deterministic: same input, same output.
pub fn plan(
    blocks: &[BlockStats],
    tiers: &[TierState],
    config: &PolicyConfig,
    now_ms: u64,
) -> Vec<Move> {
    let mut moves = Vec::new();
    let mut room: HashMap<TierKind, u64> = tiers.iter().map(|t| (t.kind, t.room_bytes())).collect();
    let local = tiers.iter().find(|t| t.kind == TierKind::Local);
    let mut local_used = local.map_or(0, |t| t.used_bytes);

    // Demotions: local, unpinned, not hot. Coldest and longest idle first.
    let mut candidates: Vec<&BlockStats> = blocks
        .iter()
        .filter(|b| {
            b.locations.contains(TierKind::Local) && !b.pinned && b.heat < config.hot_heat_min
        })
        .collect();
    candidates.sort_by(|a, b| {
        a.heat
            .total_cmp(&b.heat)
            .then(a.last_access_ms.cmp(&b.last_access_ms))
            .then(a.cid.to_bytes().cmp(&b.cid.to_bytes()))
    });
    let (high, low) = match local.and_then(|t| t.capacity_bytes) {
        Some(c) => (
            permille(c, config.local_high_watermark_permille),
            permille(c, config.local_low_watermark_permille),
        ),
        None => (u64::MAX, u64::MAX),
    };
    let mut shedding = local_used > high;
    for b in candidates {
        let idle = now_ms.saturating_sub(b.last_access_ms) >= config.demote_idle_ms_min;
        let cold = b.heat <= config.cold_heat_max && idle;
        if shedding && local_used <= low {
            shedding = false;
        }
        if !cold && !shedding {
            continue;
        }
        let Some(to) = demotion_target(TierKind::Local, b, tiers, &room, config) else {
            continue;
        };
        if !b.locations.contains(to) {
            if let Some(r) = room.get_mut(&to) {
                *r = r.saturating_sub(b.size_bytes);
            }
        }
        local_used = local_used.saturating_sub(b.size_bytes);
        moves.push(Move {
            cid: b.cid,
            size_bytes: b.size_bytes,
            from: TierKind::Local,
            to,
            delete_source: true,
            reason: if cold {
                MoveReason::Cold
            } else {
                MoveReason::Capacity
            },
        });
    }

    // Promotions: not local, hot, while the local store stays under its high watermark.
    let mut hot: Vec<&BlockStats> = blocks
        .iter()
        .filter(|b| !b.locations.contains(TierKind::Local) && b.heat >= config.hot_heat_min)
        .collect();
    hot.sort_by(|a, b| {
        b.heat
            .total_cmp(&a.heat)
            .then(a.cid.to_bytes().cmp(&b.cid.to_bytes()))
    });
    if local.is_some() {
        for b in hot {
            let Some(from) = b.locations.iter().next() else {
                continue;
            };
            if local_used.saturating_add(b.size_bytes) > high {
                break;
            }
            local_used += b.size_bytes;
            moves.push(Move {
                cid: b.cid,
                size_bytes: b.size_bytes,
                from,
                to: TierKind::Local,
                delete_source: false,
                reason: MoveReason::Hot,
            });
        }
    }
    debug_assert!(moves.iter().all(|m| m.from != m.to));
    moves
}

/// On a read of a block that is not local: promote it if the local store has room below its
/// high watermark. `None` when it is local already or there is no room.
pub fn on_access(block: &BlockStats, local: &TierState, config: &PolicyConfig) -> Option<Move> {
    if block.locations.contains(TierKind::Local) {
        return None;
    }
    let from = block.locations.iter().find(|k| *k != TierKind::Memory)?;
    let high = local.capacity_bytes.map_or(u64::MAX, |c| {
        permille(c, config.local_high_watermark_permille)
    });
    if local.used_bytes.saturating_add(block.size_bytes) > high {
        return None;
    }
    Some(Move {
        cid: block.cid,
        size_bytes: block.size_bytes,
        from,
        to: TierKind::Local,
        delete_source: false,
        reason: MoveReason::Access,
    })
}
