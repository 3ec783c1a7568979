//! One round of the placement runner: block statistics read from the Arrow index, tier states
//! from the tiered store, decisions from the pure policy ([`crate::placement::plan`]), carried
//! out by the mover ([`TieredBlockstore::execute`]).
//!
//! The daemon calls [`run_round`] periodically (the node's repository owns the thread and the
//! locks). Where the statistics come from:
//! - candidates for demotion are the unpinned rows (`pin_type = none`), at most
//!   [`PLACEMENT_CANDIDATES_MAX`] a round; candidates for promotion the rows held only by a
//!   remote tier whose recorded heat reaches the policy's `hot_heat_min`;
//! - a row's heat is the cache's score at its last access, decayed by wall-clock idle time
//!   (half-life [`HEAT_HALF_LIFE_MS`]), so a block read often long ago cools down;
//! - idle time counts from the last access, or from when the block was first stored;
//! - locations come from the row's `tiers` bits; a row naming no tier is a local block (the
//!   store recorded it before any tier was configured).

use cid::Cid;

use crate::index::query::{Column, Op, Predicate, Value};
use crate::index::{Index, IndexError, IndexRow, PinType, Query};
use crate::placement::{self, BlockStats, TierSet};
use crate::tier::{TierError, TierKind};
use crate::tiered::{MoveReport, TieredBlockstore};

/// Rows read from the index per round and kind of candidate (demotion, promotion): a round's
/// memory stays bounded whatever the repository's size; the next round sees the rest.
pub const PLACEMENT_CANDIDATES_MAX: usize = 100_000;
/// Wall-clock half-life of a recorded heat score.
pub const HEAT_HALF_LIFE_MS: u64 = 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("reading the index: {0}")]
    Index(#[from] IndexError),
    #[error("moving blocks: {0}")]
    Tier(#[from] TierError),
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Blocks the policy looked at.
    pub considered: u64,
    /// Moves it planned.
    pub planned: u64,
    /// Demotions (local copy dropped once the colder tier confirmed it).
    pub demoted: u64,
    /// Promotions (copied back into the local store).
    pub promoted: u64,
    pub moves: MoveReport,
}

/// `heat` halved for every [`HEAT_HALF_LIFE_MS`] of `idle_ms`.
pub fn decayed_heat(heat: f32, idle_ms: u64) -> f64 {
    f64::from(heat) * 0.5f64.powf(idle_ms as f64 / HEAT_HALF_LIFE_MS as f64)
}

/// The tiers a row's bitmask names (an empty mask: the local store).
pub fn locations(mask: u32, tier_names: &[String]) -> TierSet {
    let mut set = TierSet::EMPTY;
    for (i, name) in tier_names.iter().enumerate().take(32) {
        if mask & (1 << i) != 0 {
            if let Ok(kind) = name.parse::<TierKind>() {
                set.insert(kind);
            }
        }
    }
    if !set.iter().any(|k| k != TierKind::Memory) {
        set.insert(TierKind::Local);
    }
    set
}

/// The policy's view of one row at `now_ms`.
pub fn stats_of(row: &IndexRow, tier_names: &[String], now_ms: u64) -> BlockStats {
    let last = row
        .last_access_ms
        .unwrap_or(row.first_seen_ms)
        .max(0)
        .unsigned_abs();
    BlockStats {
        cid: row.cid,
        size_bytes: row.size,
        pinned: row.pin != PinType::None,
        heat: decayed_heat(row.heat, now_ms.saturating_sub(last)),
        last_access_ms: last,
        locations: locations(row.tiers, tier_names),
    }
}

fn pred(column: Column, op: Op, value: Value) -> Predicate {
    Predicate { column, op, value }
}

/// The candidates of a round: unpinned rows, and hot rows held only remotely.
pub fn gather(
    index: &Index,
    hot_heat_min: f64,
    now_ms: u64,
) -> Result<Vec<BlockStats>, IndexError> {
    let names = index.tier_names();
    let unpinned = Query {
        filters: vec![pred(Column::PinType, Op::Eq, Value::Pin(PinType::None))],
        sort: None,
        limit: PLACEMENT_CANDIDATES_MAX,
    };
    let mut out: Vec<BlockStats> = index
        .query(&unpinned)?
        .rows()?
        .iter()
        .map(|r| stats_of(r, &names, now_ms))
        .collect();
    let mut seen: std::collections::HashSet<Cid> = out.iter().map(|b| b.cid).collect();
    let remote_hot = Query {
        filters: vec![
            pred(
                Column::Tiers,
                Op::Ne,
                Value::Tier(TierKind::Local.as_str().into()),
            ),
            pred(Column::Heat, Op::Ge, Value::F32(hot_heat_min as f32)),
        ],
        sort: None,
        limit: PLACEMENT_CANDIDATES_MAX,
    };
    for r in index.query(&remote_hot)?.rows()? {
        let s = stats_of(&r, &names, now_ms);
        if !s.locations.contains(TierKind::Local) && seen.insert(s.cid) {
            out.push(s);
        }
    }
    Ok(out)
}

/// One round: gather, plan, move. Moves already done stay done if a later one fails.
pub fn run_round(
    index: &Index,
    tiered: &TieredBlockstore,
    now_ms: u64,
) -> Result<RoundReport, RunnerError> {
    let policy = *tiered.policy();
    let blocks = gather(index, policy.hot_heat_min, now_ms)?;
    let tiers = tiered.tier_states()?;
    let moves = placement::plan(&blocks, &tiers, &policy, now_ms);
    let mut report = RoundReport {
        considered: blocks.len() as u64,
        planned: moves.len() as u64,
        ..RoundReport::default()
    };
    if moves.is_empty() {
        return Ok(report);
    }
    report.demoted = moves.iter().filter(|m| m.to != TierKind::Local).count() as u64;
    report.promoted = report.planned - report.demoted;
    report.moves = tiered.execute(moves)?;
    tracing::info!(
        considered = report.considered,
        demoted = report.demoted,
        promoted = report.promoted,
        bytes = report.moves.bytes,
        "placement round"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_halves_per_half_life() {
        assert_eq!(decayed_heat(4.0, 0), 4.0);
        assert!((decayed_heat(4.0, HEAT_HALF_LIFE_MS) - 2.0).abs() < 1e-9);
        assert!((decayed_heat(4.0, 2 * HEAT_HALF_LIFE_MS) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn locations_from_bits_and_an_empty_mask_is_local() {
        let names: Vec<String> = vec!["local".into(), "s3".into(), "tape".into()];
        assert_eq!(locations(0, &names), TierSet::of(&[TierKind::Local]));
        assert_eq!(locations(0b10, &names), TierSet::of(&[TierKind::S3]));
        assert_eq!(
            locations(0b11, &names),
            TierSet::of(&[TierKind::Local, TierKind::S3])
        );
        // An unknown name alone leaves the block local.
        assert_eq!(locations(0b100, &names), TierSet::of(&[TierKind::Local]));
    }
}
