//! `refs` and `dag stat`: walks of a DAG that report what they pass, as kubo's commands do.
//!
//! - [`refs`] lists the links under a root (its direct links, or with a depth limit or none),
//!   each as kubo's `--format` (`<src>`, `<dst>`, `<linkname>`) makes it, optionally each CID
//!   once. Every listed block is read (so over a fetching store, `refs -r` makes the DAG
//!   local, as kubo's does). The walk keeps its own stack: a long chain of blocks cannot
//!   overflow the thread's.
//! - [`DagStats`] counts the blocks and bytes of DAGs (kubo's `dag stat`: each DAG's distinct
//!   blocks, and what the DAGs given together share).

use super::links::{links, walk_from, DagError, Visited};
use super::pb::PbNode;
use super::DAG_PB_CODEC;
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::Blockstore;
use std::collections::HashMap;

/// kubo's default `refs --format`.
pub const REFS_FORMAT_DEFAULT: &str = "<dst>";
/// The format `refs --edges` uses.
pub const REFS_FORMAT_EDGES: &str = "<src> -> <dst>";

/// How [`refs`] walks and prints.
#[derive(Clone, Debug)]
pub struct RefsOptions {
    /// Each line, with `<src>`, `<dst>` and `<linkname>` replaced.
    pub format: String,
    /// Print each CID once, and do not walk under one again.
    pub unique: bool,
    /// Levels of links below the root to list: `Some(1)` for direct links (kubo without
    /// `-r`), `None` for all.
    pub max_depth: Option<u64>,
}

impl Default for RefsOptions {
    fn default() -> Self {
        Self {
            format: REFS_FORMAT_DEFAULT.to_owned(),
            unique: false,
            max_depth: Some(1),
        }
    }
}

/// What a `refs` walk remembers across roots (with `unique`, a CID printed under one root is
/// not printed under the next: kubo keeps one writer for all its arguments).
#[derive(Debug, Default)]
pub struct RefsSeen(HashMap<Cid, u64>);

/// The `(cid, name)` links of a block; names only dag-pb has.
fn named_links(cid: &Cid, data: &Bytes) -> Result<Vec<(Cid, String)>, DagError> {
    if cid.codec() == DAG_PB_CODEC {
        return Ok(PbNode::decode(data)?
            .links
            .into_iter()
            .map(|l| (l.cid, l.name.unwrap_or_default()))
            .collect());
    }
    Ok(links(cid, data)?
        .into_iter()
        .map(|c| (c, String::new()))
        .collect())
}

fn read(store: &dyn Blockstore, cid: &Cid) -> Result<Bytes, DagError> {
    store.get(cid)?.ok_or(DagError::Missing(*cid))
}

struct Frame {
    cid: Cid,
    depth: u64,
    links: std::vec::IntoIter<(Cid, String)>,
}

/// Lists the links under `root` (depth-first, in link order) through `emit`, one line each.
pub fn refs<E: From<DagError>>(
    store: &dyn Blockstore,
    root: &Cid,
    opts: &RefsOptions,
    seen: &mut RefsSeen,
    emit: &mut dyn FnMut(String) -> Result<(), E>,
) -> Result<(), E> {
    if opts.max_depth == Some(0) {
        return Ok(());
    }
    let data = read(store, root)?;
    let mut stack = vec![Frame {
        cid: *root,
        depth: 0,
        links: named_links(root, &data)?.into_iter(),
    }];
    while let Some(frame) = stack.last_mut() {
        let Some((child, name)) = frame.links.next() else {
            stack.pop();
            continue;
        };
        let (src, depth) = (frame.cid, frame.depth + 1);
        let (deeper, print) = visit(opts, seen, &child, depth);
        if !deeper && !print {
            continue;
        }
        // A listed block is read even when the walk stops there: refs name what is here.
        let data = read(store, &child)?;
        if print {
            emit(
                opts.format
                    .replace("<src>", &src.to_string())
                    .replace("<dst>", &child.to_string())
                    .replace("<linkname>", &name),
            )?;
        }
        if deeper {
            stack.push(Frame {
                cid: child,
                depth,
                links: named_links(&child, &data)?.into_iter(),
            });
        }
    }
    Ok(())
}

/// Whether to go under `cid` (reached at `depth`) and whether to print it: kubo's pruning. A
/// CID seen before is skipped with `unique` unless it is now reached higher up than before
/// (then its links are walked again to the depth limit, but it is not printed twice).
fn visit(opts: &RefsOptions, seen: &mut RefsSeen, cid: &Cid, depth: u64) -> (bool, bool) {
    let at_limit = opts.max_depth.is_some_and(|m| depth >= m);
    if opts.max_depth.is_some_and(|m| depth > m) {
        return (false, false);
    }
    if !opts.unique {
        return (!at_limit, true);
    }
    let before = seen.0.get(cid).copied();
    if let Some(old) = before {
        if opts.max_depth.is_none() || old <= depth {
            return (false, false);
        }
    }
    seen.0.insert(*cid, depth);
    (!at_limit, before.is_none())
}

/// One DAG's count in [`DagStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DagStat {
    pub cid: Cid,
    /// Bytes of its distinct blocks.
    pub size: u64,
    /// Its distinct blocks.
    pub num_blocks: u64,
}

/// kubo's `dag stat` over several DAGs.
#[derive(Debug, Default)]
pub struct DagStats {
    pub stats: Vec<DagStat>,
    /// Bytes of the blocks distinct across all the DAGs.
    pub total_size: u64,
    /// The sum of the DAGs' own sizes (each DAG's distinct blocks).
    pub summed_size: u64,
    seen: Visited,
}

impl DagStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// Walks the DAG under `root` (every block read once) and adds it; `progress` sees the
    /// counts after each block.
    pub fn add<E: From<DagError>>(
        &mut self,
        store: &dyn Blockstore,
        root: &Cid,
        progress: &mut dyn FnMut(&DagStats) -> Result<(), E>,
    ) -> Result<(), E> {
        self.stats.push(DagStat {
            cid: *root,
            size: 0,
            num_blocks: 0,
        });
        let mut walked = Visited::new();
        walk_from::<E, _>(store, &[*root], &mut walked, |cid, data| {
            let n = data.len() as u64;
            if let Some(s) = self.stats.last_mut() {
                s.size += n;
                s.num_blocks += 1;
            }
            self.summed_size += n;
            if self.seen.insert(cid) {
                self.total_size += n;
            }
            progress(self)
        })
    }

    /// Blocks distinct across all the DAGs.
    pub fn unique_blocks(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Bytes counted in more than one DAG.
    pub fn shared_size(&self) -> u64 {
        self.summed_size - self.total_size
    }

    /// The DAGs' summed sizes over the distinct bytes (1 when they share nothing).
    pub fn ratio(&self) -> f64 {
        if self.total_size == 0 {
            0.0
        } else {
            self.summed_size as f64 / self.total_size as f64
        }
    }

    /// kubo's JSON: zero fields left out (`omitempty`), `final_` adding the totals only known
    /// at the end.
    pub fn to_json(&self, final_: bool) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            if v != serde_json::json!(0) && v != serde_json::json!(0.0) {
                m.insert(k.to_owned(), v);
            }
        };
        if final_ {
            put("UniqueBlocks", self.unique_blocks().into());
        }
        put("TotalSize", self.total_size.into());
        if final_ {
            put("SharedSize", self.shared_size().into());
            put("Ratio", self.ratio().into());
        }
        let stats: Vec<serde_json::Value> = self
            .stats
            .iter()
            .map(|s| {
                let mut o = serde_json::Map::new();
                o.insert("Cid".into(), s.cid.to_string().into());
                if s.size > 0 {
                    o.insert("Size".into(), s.size.into());
                }
                if s.num_blocks > 0 {
                    o.insert("NumBlocks".into(), s.num_blocks.into());
                }
                serde_json::Value::Object(o)
            })
            .collect();
        if !stats.is_empty() {
            m.insert("DagStats".into(), stats.into());
        }
        serde_json::Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dag::pb::PbLink;
    use ipfs_kit_blockstore::{hash::HashFn, Block, MemoryBlockstore};

    fn raw(store: &MemoryBlockstore, data: &[u8]) -> Cid {
        let cid = Cid::new_v1(
            crate::dag::RAW_CODEC,
            HashFn::Sha2_256.digest(data).unwrap(),
        );
        store
            .put_many(&[Block::new(cid, Bytes::copy_from_slice(data)).unwrap()])
            .unwrap();
        cid
    }

    fn node(store: &MemoryBlockstore, links: &[(&str, Cid)]) -> Cid {
        let n = PbNode {
            links: links
                .iter()
                .map(|(name, cid)| PbLink {
                    cid: *cid,
                    name: Some((*name).to_owned()),
                    tsize: Some(1),
                })
                .collect(),
            data: Some(Bytes::from_static(b"\x08\x01")),
        };
        let bytes = Bytes::from(n.encode());
        let cid = Cid::new_v1(DAG_PB_CODEC, HashFn::Sha2_256.digest(&bytes).unwrap());
        store.put_many(&[Block::new(cid, bytes).unwrap()]).unwrap();
        cid
    }

    fn lines(store: &MemoryBlockstore, root: &Cid, opts: &RefsOptions) -> Vec<String> {
        let mut out = Vec::new();
        refs::<DagError>(store, root, opts, &mut RefsSeen::default(), &mut |l| {
            out.push(l);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn refs_walk_like_kubo() {
        let s = MemoryBlockstore::new();
        let (a, b) = (raw(&s, b"a"), raw(&s, b"b"));
        let inner = node(&s, &[("a", a), ("b", b)]);
        let root = node(&s, &[("x", inner), ("y", a), ("z", inner)]);
        let direct = lines(&s, &root, &RefsOptions::default());
        assert_eq!(direct, [inner, a, inner].map(|c| c.to_string()));
        let all = RefsOptions {
            max_depth: None,
            ..RefsOptions::default()
        };
        let want = [inner, a, b, a, inner, a, b].map(|c| c.to_string());
        assert_eq!(lines(&s, &root, &all), want);
        let unique = RefsOptions {
            unique: true,
            ..all.clone()
        };
        assert_eq!(
            lines(&s, &root, &unique),
            [inner, a, b].map(|c| c.to_string())
        );
        let edges = RefsOptions {
            format: "<src> -> <dst> <linkname>".into(),
            ..RefsOptions::default()
        };
        assert_eq!(lines(&s, &root, &edges)[1], format!("{root} -> {a} y"));
        let none = RefsOptions {
            max_depth: Some(0),
            ..RefsOptions::default()
        };
        assert!(lines(&s, &root, &none).is_empty());
        // A missing block is an error naming it.
        let absent = Cid::new_v1(
            crate::dag::RAW_CODEC,
            HashFn::Sha2_256.digest(b"z").unwrap(),
        );
        let holed = node(&s, &[("gone", absent)]);
        let err = refs::<DagError>(&s, &holed, &all, &mut RefsSeen::default(), &mut |_| Ok(()))
            .unwrap_err();
        assert!(matches!(err, DagError::Missing(c) if c == absent));
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let s = MemoryBlockstore::new();
        let mut cur = raw(&s, b"end");
        for _ in 0..100_000 {
            cur = node(&s, &[("next", cur)]);
        }
        let all = RefsOptions {
            max_depth: None,
            ..RefsOptions::default()
        };
        assert_eq!(lines(&s, &cur, &all).len(), 100_000);
    }

    #[test]
    fn stats_count_distinct_and_shared() {
        let s = MemoryBlockstore::new();
        let (a, b) = (raw(&s, b"aaaa"), raw(&s, b"bb"));
        let one = node(&s, &[("a", a), ("a2", a)]);
        let two = node(&s, &[("a", a), ("b", b)]);
        let mut st = DagStats::new();
        st.add::<DagError>(&s, &one, &mut |_| Ok(())).unwrap();
        st.add::<DagError>(&s, &two, &mut |_| Ok(())).unwrap();
        let size = |c: &Cid| s.get(c).unwrap().unwrap().len() as u64;
        assert_eq!(st.stats[0].num_blocks, 2);
        assert_eq!(st.stats[0].size, size(&one) + 4);
        assert_eq!(st.stats[1].size, size(&two) + 4 + 2);
        assert_eq!(st.unique_blocks(), 4);
        assert_eq!(st.total_size, size(&one) + size(&two) + 6);
        assert_eq!(st.shared_size(), 4);
        let j = st.to_json(true);
        assert_eq!(j["UniqueBlocks"], 4);
        assert_eq!(j["DagStats"][1]["Cid"], two.to_string());
        assert!(j["Ratio"].as_f64().unwrap() > 1.0);
    }
}
