//! Property test of the index's pin column against a model of the pin set.
//!
//! A random DAG (nodes link only to lower-numbered nodes, so it is acyclic and shares blocks
//! between roots) is written to a real on-disk repository with its Arrow index, then a random
//! sequence of `pin add` (direct or recursive), `pin rm`, `pin update` and `repo gc` runs. After
//! every step each block's `pin_type` in the index must be what the model says: the block's own
//! pin if it has one, else `indirect` when a recursive pin reaches it, else `none`; a block that
//! GC removed has no row. `Repo::is_pinned` must agree with the same model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::{hash::HashFn, Block};
use ipfs_kit_tiers::index::PinType;
use proptest::prelude::*;

use super::{PinKind, Repo, RepoError};
use crate::dag::pb::{PbLink, PbNode};
use crate::dag::{DAG_PB_CODEC, RAW_CODEC};

/// Blocks in a generated DAG.
const NODES: usize = 10;

#[derive(Debug, Clone)]
enum Op {
    Add { node: usize, recursive: bool },
    Rm { node: usize },
    Update { from: usize, to: usize, unpin: bool },
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NODES, any::<bool>()).prop_map(|(node, recursive)| Op::Add { node, recursive }),
        3 => (0..NODES).prop_map(|node| Op::Rm { node }),
        1 => (0..NODES, 0..NODES, any::<bool>())
            .prop_map(|(from, to, unpin)| Op::Update { from, to, unpin }),
        1 => Just(Op::Gc),
    ]
}

/// Children of each node: node `i` links to a subset of `0..i` (leaves are raw blocks).
fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (0..NODES)
        .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
        .collect::<Vec<_>>()
}

/// The model: own pins and which blocks are still stored.
struct Model {
    kids: Vec<Vec<usize>>,
    own: BTreeMap<usize, PinKind>,
    present: BTreeSet<usize>,
}

impl Model {
    fn reachable(&self, roots: impl Iterator<Item = usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = roots.collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(self.kids[n].iter().copied());
            }
        }
        seen
    }

    fn recursive_roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.own
            .iter()
            .filter(|(_, k)| **k == PinKind::Recursive)
            .map(|(n, _)| *n)
    }

    fn complete(&self, root: usize) -> bool {
        self.reachable(std::iter::once(root))
            .is_subset(&self.present)
    }

    fn expected(&self, n: usize) -> PinType {
        match self.own.get(&n) {
            Some(PinKind::Recursive) => PinType::Recursive,
            Some(PinKind::Direct) => PinType::Direct,
            Some(PinKind::Indirect) => unreachable!("own pins are direct or recursive"),
            None if self.reachable(self.recursive_roots()).contains(&n) => PinType::Indirect,
            None => PinType::None,
        }
    }

    fn expected_is_pinned(&self, n: usize) -> Option<PinKind> {
        match self.expected(n) {
            PinType::Recursive => Some(PinKind::Recursive),
            PinType::Direct => Some(PinKind::Direct),
            PinType::Indirect => Some(PinKind::Indirect),
            _ => None,
        }
    }
}

fn write_dag(repo: &Repo, kids: &[Vec<usize>]) -> Vec<Cid> {
    let mut cids: Vec<Cid> = Vec::with_capacity(kids.len());
    for (i, k) in kids.iter().enumerate() {
        let (codec, data) = if k.is_empty() {
            (RAW_CODEC, format!("leaf {i}").into_bytes())
        } else {
            let n = PbNode {
                links: k
                    .iter()
                    .map(|&c| PbLink {
                        cid: cids[c],
                        name: None,
                        tsize: None,
                    })
                    .collect(),
                // Unique bytes per node, so no two nodes share a multihash (the index's key).
                data: Some(Bytes::from(format!("node {i}").into_bytes())),
            };
            (DAG_PB_CODEC, n.encode())
        };
        let cid = Cid::new_v1(codec, HashFn::Sha2_256.digest(&data).unwrap());
        repo.blocks()
            .put(&Block::new(cid, Bytes::from(data)).unwrap())
            .unwrap();
        cids.push(cid);
    }
    cids
}

fn check(repo: &Repo, model: &Model, cids: &[Cid], step: &str) -> Result<(), TestCaseError> {
    let ix = repo.index().expect("the index is on by default");
    for (n, cid) in cids.iter().enumerate() {
        let row = ix.get(cid).unwrap();
        if model.present.contains(&n) {
            let row =
                row.ok_or_else(|| TestCaseError::fail(format!("{step}: node {n} has no row")))?;
            prop_assert_eq!(row.pin, model.expected(n), "{}: node {} pin_type", step, n);
            prop_assert_eq!(
                repo.is_pinned(cid).unwrap(),
                model.expected_is_pinned(n),
                "{}: node {} is_pinned",
                step,
                n
            );
        } else {
            prop_assert!(
                row.is_none(),
                "{}: node {} was collected but has a row",
                step,
                n
            );
        }
    }
    Ok(())
}

fn apply(repo: &Repo, model: &mut Model, cids: &[Cid], op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Add { node, recursive } => {
            let ok_model = if recursive {
                model.complete(node)
            } else {
                model.present.contains(&node) && model.own.get(&node) != Some(&PinKind::Recursive)
            };
            let r = repo.pin_add(&cids[node], recursive, None);
            prop_assert_eq!(r.is_ok(), ok_model, "{:?}: {:?}", op, r);
            if ok_model {
                model.own.insert(
                    node,
                    if recursive {
                        PinKind::Recursive
                    } else {
                        PinKind::Direct
                    },
                );
            }
        }
        Op::Rm { node } => {
            let r = repo.pin_rm(&cids[node]);
            let had = model.own.remove(&node);
            prop_assert_eq!(r.ok(), had, "{:?}", op);
        }
        Op::Update { from, to, unpin } => {
            let ok_model = model.own.get(&from) == Some(&PinKind::Recursive) && model.complete(to);
            let r = repo.pin_update(&cids[from], &cids[to], unpin);
            prop_assert_eq!(r.is_ok(), ok_model, "{:?}: {:?}", op, r);
            if ok_model {
                if unpin && from != to {
                    model.own.remove(&from);
                }
                model.own.insert(to, PinKind::Recursive);
            }
        }
        Op::Gc => {
            repo.gc()
                .map_err(|e: RepoError| TestCaseError::fail(e.to_string()))?;
            let pinned: BTreeSet<usize> = model
                .reachable(model.recursive_roots())
                .union(&model.own.keys().copied().collect())
                .copied()
                .collect();
            model.present.retain(|n| pinned.contains(n));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn index_pin_column_matches_the_pin_set(kids in dag(), ops in proptest::collection::vec(op(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(&dir.path().join("repo")).unwrap();
        let cids = write_dag(&repo, &kids);
        let mut model = Model { kids, own: BTreeMap::new(), present: (0..NODES).collect() };
        check(&repo, &model, &cids, "start")?;
        for (i, op) in ops.iter().enumerate() {
            apply(&repo, &mut model, &cids, op)?;
            check(&repo, &model, &cids, &format!("step {i} {op:?}"))?;
        }
    }
}
