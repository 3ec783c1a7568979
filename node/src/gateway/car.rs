//! CAR answers of the gateway (`?format=car`, `Accept: application/vnd.ipld.car`): the blocks
//! along the path, then what `dag-scope` and `entity-bytes` ask of the DAG at its end
//! (ipfs/specs `trustless-gateway.md`), each block once (`dups=n`), depth-first.

use super::GwError;
use crate::api::{ApiError, Args};
use crate::unixfs::export::{self, EntityBytes, ExportError};
use axum::http::StatusCode;
use cid::Cid;
use ipfs_kit_blockstore::Blockstore;

/// `dag-scope`: how much of the DAG at the path's end the CAR holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DagScope {
    /// Its root block only.
    Block,
    /// What reading it needs: a whole file (or the part under `entity-bytes`), a directory's
    /// own blocks; otherwise the root block.
    Entity,
    /// All of it (the default).
    All,
}

/// The CAR parameters of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CarRequest {
    pub scope: DagScope,
    pub bytes: Option<EntityBytes>,
}

impl CarRequest {
    /// `dag-scope` and `entity-bytes` from the query; anything else there is left alone, and
    /// a value the spec does not allow is 400.
    pub fn parse(args: &Args) -> Result<Self, GwError> {
        let bad = |m: String| GwError(StatusCode::BAD_REQUEST, m);
        let scope = match args.get("dag-scope") {
            None | Some("all") => DagScope::All,
            Some("entity") => DagScope::Entity,
            Some("block") => DagScope::Block,
            Some(other) => return Err(bad(format!("invalid dag-scope {other:?}"))),
        };
        let bytes = match args.get("entity-bytes") {
            None => None,
            Some(v) => Some(EntityBytes::parse(v).ok_or_else(|| {
                bad(format!(
                    "invalid entity-bytes {v:?} (want from:to, to >= from, or from:*)"
                ))
            })?),
        };
        Ok(CarRequest { scope, bytes })
    }

    /// What sets this request's CAR apart from the default one, for its `ETag` (empty for the
    /// default).
    pub fn tag(&self) -> String {
        let scope = match self.scope {
            DagScope::All => "",
            DagScope::Entity => "entity",
            DagScope::Block => "block",
        };
        match self.bytes {
            None => scope.to_owned(),
            Some(b) => {
                let to = b.to.map_or("*".to_owned(), |t| t.to_string());
                format!("{scope}:{}:{to}", b.from)
            }
        }
    }
}

/// A CAR v1 rooted at `root`: the blocks along `path` (root first), then those of the DAG at
/// its end that `req` asks for, each once.
pub(super) fn write_car(
    reader: &crate::api::DagReader,
    root: Cid,
    path: &[Cid],
    req: CarRequest,
    w: &mut dyn std::io::Write,
) -> Result<(), ApiError> {
    use crate::dag::links::{walk_from, Visited};
    let store = reader.store();
    let io = |e: std::io::Error| ApiError::internal(format!("writing CAR: {e}"));
    w.write_all(&crate::car::encode_header_v1(&[root])?)
        .map_err(io)?;
    let mut visited = Visited::new();
    let mut write_block = |w: &mut dyn std::io::Write, cid: &Cid, data: &[u8]| {
        if !visited.insert(cid) || ipfs_kit_blockstore::hash::identity_data(cid).is_some() {
            return Ok(());
        }
        crate::car::write_section(w, cid, data).map(|_| ())
    };
    let (terminal, along) = path.split_last().unwrap_or((&root, &[]));
    for cid in along {
        let data = export::load_block(store, cid)?;
        write_block(w, cid, &data).map_err(io)?;
    }
    // With a range, the size of the file it applies to (none for anything else).
    let file_size = match req.bytes {
        Some(_) => file_size(store, terminal)?,
        None => None,
    };
    let scope = match req.scope {
        // For a file, all of it is the entity: a range applies the same way.
        DagScope::All if file_size.is_some() => DagScope::Entity,
        s => s,
    };
    match scope {
        DagScope::Block => {
            let data = export::load_block(store, terminal)?;
            write_block(w, terminal, &data).map_err(io)?;
        }
        DagScope::Entity => {
            // The range's blocks many at once when they are elsewhere, not one by one as the
            // walk below reaches them.
            if let (Some(bytes), Some(size)) = (req.bytes, file_size) {
                if let Some((lo, hi)) = bytes.resolve(size) {
                    reader.fetch_range(terminal, lo, hi - lo + 1)?;
                }
            }
            export::entity_blocks(store, terminal, req.bytes, &mut |cid, data| {
                write_block(w, cid, data).map_err(ExportError::Write)
            })?;
        }
        DagScope::All => {
            // The whole DAG: blocks seen on the path are skipped by `write_block`, and the
            // walk's own set keeps shared subtrees from being read twice.
            let mut walked = Visited::new();
            walk_from::<ApiError, _>(store, &[*terminal], &mut walked, |cid, data| {
                write_block(w, cid, data).map_err(io)
            })?;
        }
    }
    w.flush().map_err(io)
}

/// The content size of the UnixFS file at `cid` (a raw block, or a dag-pb File or Raw node);
/// `None` for anything else.
fn file_size(store: &dyn Blockstore, cid: &Cid) -> Result<Option<u64>, ApiError> {
    use crate::dag::unixfs_pb::DataType;
    Ok(match export::load(store, cid) {
        Ok(node) => {
            let file = match &node {
                export::Node::Raw(_) => true,
                export::Node::Pb { fs, .. } => matches!(fs.kind, DataType::File | DataType::Raw),
            };
            file.then(|| node.content_size())
        }
        Err(ExportError::UnsupportedCodec { .. }) => None,
        Err(e) => return Err(e.into()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(q: &str) -> Result<CarRequest, GwError> {
        CarRequest::parse(&Args::parse(Some(q)).unwrap())
    }

    #[test]
    fn parameters() {
        let all = req("").unwrap();
        assert_eq!(all.scope, DagScope::All);
        assert_eq!(all.tag(), "");
        assert_eq!(req("dag-scope=block").unwrap().scope, DagScope::Block);
        let r = req("dag-scope=entity&entity-bytes=-1024:*").unwrap();
        assert_eq!(r.scope, DagScope::Entity);
        assert_eq!(r.tag(), "entity:-1024:*");
        assert_ne!(
            req("entity-bytes=0:9").unwrap().tag(),
            req("entity-bytes=0:8").unwrap().tag()
        );
        for bad in [
            "dag-scope=most",
            "entity-bytes=9:0",
            "entity-bytes=1",
            "entity-bytes=a:b",
            "entity-bytes=0:",
        ] {
            assert_eq!(req(bad).unwrap_err().0, StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        let r = |s: &str, size| EntityBytes::parse(s).unwrap().resolve(size);
        assert_eq!(r("0:*", 100), Some((0, 99)));
        assert_eq!(r("10:19", 100), Some((10, 19)));
        assert_eq!(r("10:1000", 100), Some((10, 99)));
        assert_eq!(r("-10:*", 100), Some((90, 99)));
        assert_eq!(r("-1000:*", 100), Some((0, 99)));
        assert_eq!(r("499:-1000", 2000), Some((499, 1000)));
        assert_eq!(r("100:*", 100), None);
        assert_eq!(r("50:-60", 100), None);
        assert_eq!(r("0:*", 0), None);
    }
}
