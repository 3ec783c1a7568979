//! The blocks of one UnixFS entity, for the trustless gateway's `dag-scope=entity` and
//! `entity-bytes` (ipfs/specs `trustless-gateway.md`): everything needed to read a file (or
//! only the part of it under a byte range), a directory's own blocks (a HAMT's shards, not its
//! entries), and for anything else its one block.

use super::{decode_node, load_block, ExportError, Node, DAG_DEPTH_MAX};
use crate::dag::unixfs_pb::DataType;
use crate::unixfs::hamt::{self, Shard};
use bytes::Bytes;
use cid::Cid;
use ipfs_kit_blockstore::Blockstore;

/// `entity-bytes=from:to`: a file's bytes `from` to `to`, both inclusive; a negative bound
/// counts from the end, and a `to` of `*` (here `None`) is the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntityBytes {
    pub from: i64,
    pub to: Option<i64>,
}

impl EntityBytes {
    /// Parses `from:to`; `None` for anything else, or for a `to` before `from` when both
    /// count from the start (the spec asks `to >= from`).
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once(':')?;
        let from: i64 = a.parse().ok()?;
        let to = match b {
            "*" => None,
            b => Some(b.parse::<i64>().ok()?),
        };
        if let Some(t) = to {
            if from >= 0 && t >= 0 && t < from {
                return None;
            }
        }
        Some(EntityBytes { from, to })
    }

    /// The inclusive byte range this names in a file of `size` bytes, or `None` when it holds
    /// none of them.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        let at = |v: i64| -> Option<u64> {
            if v >= 0 {
                Some(v as u64)
            } else {
                size.checked_sub(v.unsigned_abs())
            }
        };
        let from = at(self.from).unwrap_or(0);
        let to = match self.to {
            None => last,
            Some(t) => at(t)?.min(last),
        };
        (from <= to).then_some((from, to))
    }
}

/// Visits the blocks of the entity at `cid` in depth-first order, each time it is reached (a
/// caller writing a CAR without duplicates skips the ones it has seen): for a UnixFS file, the
/// blocks under `range` (all of them without one; only the root when the range holds no byte);
/// for a HAMT directory, its shards; for a plain directory, a symlink, a raw block or a block
/// of another codec, that block.
pub fn entity_blocks(
    store: &dyn Blockstore,
    cid: &Cid,
    range: Option<EntityBytes>,
    visit: &mut dyn FnMut(&Cid, &Bytes) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let data = load_block(store, cid)?;
    let node = match decode_node(cid, data.clone()) {
        Ok(n) => n,
        // Not UnixFS: the entity is the block.
        Err(ExportError::UnsupportedCodec { .. }) => return visit(cid, &data),
        Err(e) => return Err(e),
    };
    let Node::Pb { fs, .. } = &node else {
        return visit(cid, &data);
    };
    match fs.kind {
        DataType::File | DataType::Raw => {
            let (lo, hi) = match range.map(|r| r.resolve(node.content_size())) {
                None => (0, u64::MAX),
                Some(Some(r)) => r,
                Some(None) => return visit(cid, &data),
            };
            file_blocks(store, cid, data, 0, (lo, hi), 0, visit)
        }
        DataType::HamtShard => {
            visit(cid, &data)?;
            let Node::Pb { node, fs } = node else {
                return Ok(());
            };
            let shard = Shard::from_node(&node, &fs).map_err(|e| ExportError::decode(cid, e))?;
            hamt::for_each(
                &shard,
                &mut |c| {
                    let d = load_block(store, c)?;
                    visit(c, &d)?;
                    match decode_node(c, d)? {
                        Node::Pb { node, fs } => {
                            Shard::from_node(&node, &fs).map_err(|e| ExportError::decode(c, e))
                        }
                        Node::Raw(_) => Err(ExportError::decode(c, "HAMT child is a raw block")),
                    }
                },
                &mut |_, _| Ok(()),
            )
        }
        DataType::Directory | DataType::Symlink | DataType::Metadata => visit(cid, &data),
    }
}

/// Visits the file node `cid` (its block `data`, its content starting at file offset `at`)
/// and, under it, every child holding a byte of `[lo, hi]`.
fn file_blocks(
    store: &dyn Blockstore,
    cid: &Cid,
    data: Bytes,
    at: u64,
    (lo, hi): (u64, u64),
    depth: usize,
    visit: &mut dyn FnMut(&Cid, &Bytes) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    if depth > DAG_DEPTH_MAX {
        return Err(ExportError::TooDeep);
    }
    visit(cid, &data)?;
    let Node::Pb { node, fs } = decode_node(cid, data)? else {
        return Ok(());
    };
    if node.links.is_empty() {
        return Ok(());
    }
    if node.links.len() != fs.blocksizes.len() {
        return Err(ExportError::decode(
            cid,
            format!(
                "{} links but {} blocksizes",
                node.links.len(),
                fs.blocksizes.len()
            ),
        ));
    }
    let mut pos = at.saturating_add(fs.data.as_ref().map_or(0, |d| d.len() as u64));
    for (link, &size) in node.links.iter().zip(&fs.blocksizes) {
        if pos > hi {
            break;
        }
        let end = pos.saturating_add(size);
        if size > 0 && end > lo {
            let child = load_block(store, &link.cid)?;
            file_blocks(store, &link.cid, child, pos, (lo, hi), depth + 1, visit)?;
        }
        pos = end;
    }
    Ok(())
}
