//! Pins: recursive and direct pins stored in redb, indirect pins computed by walking recursive
//! ones (as kubo does).
//!
//! Table `pins`: key = the pinned CID's bytes, value = one kind byte (1 recursive, 2 direct)
//! followed by the optional name in UTF-8. A CID has at most one pin: pinning recursively
//! replaces a direct pin; pinning directly a recursively pinned CID is an error (kubo).
//! Every change is one write transaction committed with immediate durability.

use super::{db, Repo, RepoError};
use crate::dag::links::{walk_cids_from, DagError, Visited};
use cid::Cid;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashSet;

pub(crate) const PINS: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("pins");

/// Longest pin name accepted.
pub const PIN_NAME_BYTES_MAX: usize = 1024;

const KIND_RECURSIVE: u8 = 1;
const KIND_DIRECT: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinKind {
    Recursive,
    Direct,
    Indirect,
}

impl PinKind {
    /// kubo's names: `recursive`, `direct`, `indirect`.
    pub fn name(self) -> &'static str {
        match self {
            PinKind::Recursive => "recursive",
            PinKind::Direct => "direct",
            PinKind::Indirect => "indirect",
        }
    }
}

/// `pin ls --type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PinFilter {
    #[default]
    All,
    Recursive,
    Direct,
    Indirect,
}

impl PinFilter {
    fn admits(self, kind: PinKind) -> bool {
        matches!(
            (self, kind),
            (PinFilter::All, _)
                | (PinFilter::Recursive, PinKind::Recursive)
                | (PinFilter::Direct, PinKind::Direct)
                | (PinFilter::Indirect, PinKind::Indirect)
        )
    }
}

/// One line of `pin ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinEntry {
    pub cid: Cid,
    pub kind: PinKind,
    pub name: Option<String>,
    /// For an indirect pin asked about by CID: the recursive pin it is reached from.
    pub via: Option<Cid>,
}

/// One line of `pin verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinVerifyEntry {
    pub cid: Cid,
    pub ok: bool,
    /// Blocks that are missing, corrupt or undecodable, with the reason.
    pub bad_nodes: Vec<(Cid, String)>,
}

pub(crate) fn create_tables(dbase: &redb::Database) -> Result<(), RepoError> {
    let tx = dbase.begin_write().map_err(db)?;
    tx.open_table(PINS).map_err(db)?;
    tx.commit().map_err(db)
}

fn encode_value(kind: PinKind, name: Option<&str>) -> Vec<u8> {
    let mut v = vec![if kind == PinKind::Recursive {
        KIND_RECURSIVE
    } else {
        KIND_DIRECT
    }];
    v.extend_from_slice(name.unwrap_or("").as_bytes());
    v
}

fn decode_value(key: &[u8], v: &[u8]) -> Result<(PinKind, Option<String>), RepoError> {
    let corrupt = || RepoError::CorruptPin(hex::encode(key));
    let (&k, name) = v.split_first().ok_or_else(corrupt)?;
    let kind = match k {
        KIND_RECURSIVE => PinKind::Recursive,
        KIND_DIRECT => PinKind::Direct,
        _ => return Err(corrupt()),
    };
    let name = std::str::from_utf8(name).map_err(|_| corrupt())?;
    Ok((kind, (!name.is_empty()).then(|| name.to_string())))
}

fn check_name(name: Option<&str>) -> Result<(), RepoError> {
    match name {
        Some(n) if n.len() > PIN_NAME_BYTES_MAX => Err(RepoError::PinNameTooLong {
            size_bytes: n.len(),
            max_bytes: PIN_NAME_BYTES_MAX,
        }),
        _ => Ok(()),
    }
}

impl Repo {
    /// `pin add`. Recursive: every block of the DAG must be present (offline), else
    /// [`DagError::Missing`] naming the first missing CID and nothing is pinned. Direct: the block
    /// itself must be present. Once it returns, the pin survives `kill -9` (an immediate-durability
    /// commit); with [`RepoOptions::sync_blocks`](super::RepoOptions) the blocks are synced first,
    /// so pin and blocks also survive power loss.
    pub fn pin_add(
        &self,
        cid: &Cid,
        recursive: bool,
        name: Option<String>,
    ) -> Result<(), RepoError> {
        self.pin_add_many(std::slice::from_ref(cid), recursive, name)
    }

    /// Pins several CIDs in one transaction: all or none.
    pub fn pin_add_many(
        &self,
        cids: &[Cid],
        recursive: bool,
        name: Option<String>,
    ) -> Result<(), RepoError> {
        check_name(name.as_deref())?;
        // Held across the check and the commit, so a GC cannot sweep a block in between.
        let _gc = self.inner.gc_lock.read();
        let store = self.inner.store.as_ref();
        // The DAG's blocks, for the index's indirect marks.
        let mut walked = Vec::new();
        if recursive {
            let mut visited = Visited::new();
            walk_cids_from::<DagError, _>(store, cids, &mut visited, |c| {
                walked.push(*c.hash());
                Ok(())
            })?;
        } else {
            for c in cids {
                if !store.has(c)? {
                    return Err(DagError::Missing(*c).into());
                }
            }
        }
        self.commit_pins(cids, recursive, name.as_deref())?;
        self.index_indirect(walked.into_iter());
        Ok(())
    }

    /// Writes pins whose DAGs are known to be complete, with the GC lock held for reading by the
    /// caller. Syncs the block store first when the repository syncs blocks
    /// ([`RepoOptions::sync_blocks`](super::RepoOptions)), so that a pin surviving power loss never
    /// points at blocks that did not.
    pub(crate) fn commit_pins(
        &self,
        cids: &[Cid],
        recursive: bool,
        name: Option<&str>,
    ) -> Result<(), RepoError> {
        let name = name.map(str::to_string);
        if self.inner.sync_blocks {
            self.inner.store.sync()?;
        }
        let tx = self.inner.pins.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(PINS).map_err(db)?;
            for c in cids {
                let key = c.to_bytes();
                let existing = match t.get(key.as_slice()).map_err(db)? {
                    Some(v) => Some(decode_value(&key, v.value())?),
                    None => None,
                };
                let kind = if recursive {
                    PinKind::Recursive
                } else {
                    PinKind::Direct
                };
                match existing {
                    Some((PinKind::Recursive, _)) if !recursive => {
                        return Err(RepoError::AlreadyPinnedRecursively(*c))
                    }
                    // Re-pinning the same way keeps the old name unless a new one is given.
                    Some((k, _)) if k == kind && name.is_none() => continue,
                    _ => {}
                }
                t.insert(
                    key.as_slice(),
                    encode_value(kind, name.as_deref()).as_slice(),
                )
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        tracing::debug!(pins = cids.len(), recursive, "pinned");
        self.index_pins(cids, recursive, name.as_deref());
        Ok(())
    }

    /// `pin update <from> <to>`: `from` must be pinned recursively; `to` (whose DAG must be
    /// complete) becomes pinned recursively with `from`'s name, and `from` is unpinned when
    /// `unpin` (kubo's default). One transaction.
    pub fn pin_update(&self, from: &Cid, to: &Cid, unpin: bool) -> Result<(), RepoError> {
        let _gc = self.inner.gc_lock.read();
        let name = match self.pin_of(from)? {
            Some((PinKind::Recursive, name)) => name,
            _ => return Err(RepoError::NotPinnedRecursively(*from)),
        };
        let store = self.inner.store.as_ref();
        let mut visited = Visited::new();
        let mut walked = Vec::new();
        walk_cids_from::<DagError, _>(store, std::slice::from_ref(to), &mut visited, |c| {
            walked.push(*c.hash());
            Ok(())
        })?;
        if self.inner.sync_blocks {
            store.sync()?;
        }
        let tx = self.inner.pins.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(PINS).map_err(db)?;
            if unpin && from != to {
                t.remove(from.to_bytes().as_slice()).map_err(db)?;
            }
            t.insert(
                to.to_bytes().as_slice(),
                encode_value(PinKind::Recursive, name.as_deref()).as_slice(),
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        self.index_pins(std::slice::from_ref(to), true, name.as_deref());
        self.index_indirect(walked.into_iter());
        if unpin && from != to {
            self.index_unpinned(std::slice::from_ref(from));
        }
        Ok(())
    }

    /// Inserts pins without checking for blocks: for bulk loads and tests. One transaction.
    pub fn pins_insert_batch(
        &self,
        entries: &[(Cid, PinKind, Option<String>)],
    ) -> Result<(), RepoError> {
        let tx = self.inner.pins.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(PINS).map_err(db)?;
            for (c, kind, name) in entries {
                check_name(name.as_deref())?;
                t.insert(
                    c.to_bytes().as_slice(),
                    encode_value(*kind, name.as_deref()).as_slice(),
                )
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// `pin rm` (kubo's default, recursive): removes a direct or recursive pin; returns its kind.
    /// A CID pinned only indirectly is [`RepoError::PinnedIndirectly`]; otherwise
    /// [`RepoError::NotPinned`].
    pub fn pin_rm(&self, cid: &Cid) -> Result<PinKind, RepoError> {
        let key = cid.to_bytes();
        let tx = self.inner.pins.begin_write().map_err(db)?;
        let removed = {
            let mut t = tx.open_table(PINS).map_err(db)?;
            let removed = t.remove(key.as_slice()).map_err(db)?;
            match removed {
                Some(v) => Some(decode_value(&key, v.value())?.0),
                None => None,
            }
        };
        match removed {
            Some(kind) => {
                tx.commit().map_err(db)?;
                self.index_unpinned(std::slice::from_ref(cid));
                Ok(kind)
            }
            None => {
                tx.abort().map_err(db)?;
                match self.find_indirect(cid)? {
                    Some(root) => Err(RepoError::PinnedIndirectly {
                        cid: *cid,
                        root: Box::new(root),
                    }),
                    None => Err(RepoError::NotPinned(*cid)),
                }
            }
        }
    }

    /// The direct or recursive pin on exactly `cid`, if any.
    fn pin_of(&self, cid: &Cid) -> Result<Option<(PinKind, Option<String>)>, RepoError> {
        let tx = self.inner.pins.begin_read().map_err(db)?;
        let t = tx.open_table(PINS).map_err(db)?;
        let key = cid.to_bytes();
        match t.get(key.as_slice()).map_err(db)? {
            Some(v) => Ok(Some(decode_value(&key, v.value())?)),
            None => Ok(None),
        }
    }

    /// All direct and recursive pins, in key order.
    pub(crate) fn stored_pins(
        &self,
        filter: PinFilter,
    ) -> Result<Vec<(Cid, PinKind, Option<String>)>, RepoError> {
        let tx = self.inner.pins.begin_read().map_err(db)?;
        let t = tx.open_table(PINS).map_err(db)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db)? {
            let (k, v) = item.map_err(db)?;
            let (kind, name) = decode_value(k.value(), v.value())?;
            if filter.admits(kind) {
                let cid = Cid::try_from(k.value())
                    .map_err(|_| RepoError::CorruptPin(hex::encode(k.value())))?;
                out.push((cid, kind, name));
            }
        }
        Ok(out)
    }

    /// The recursive pin whose DAG contains `cid` (not as its root), if any.
    fn find_indirect(&self, cid: &Cid) -> Result<Option<Cid>, RepoError> {
        let store = self.inner.store.as_ref();
        for (root, _, _) in self.stored_pins(PinFilter::Recursive)? {
            if root == *cid {
                continue;
            }
            let mut visited = Visited::new();
            let mut found = false;
            let r = walk_cids_from::<DagError, _>(store, &[root], &mut visited, |c| {
                if c == cid {
                    found = true;
                    // Stop the walk early: a sentinel error that is not reported.
                    return Err(DagError::Missing(*c));
                }
                Ok(())
            });
            if found {
                return Ok(Some(root));
            }
            r?;
        }
        Ok(None)
    }

    /// `pin ls [--type] [cid]`. With a CID: its pin (or the recursive pin it is reached from),
    /// else [`RepoError::NotPinned`]. Without: recursive and direct pins from the table, then
    /// (for `all`/`indirect`) every block reached from recursive pins that is not itself pinned.
    pub fn pin_ls(&self, filter: PinFilter, cid: Option<&Cid>) -> Result<Vec<PinEntry>, RepoError> {
        if let Some(c) = cid {
            if let Some((kind, name)) = self.pin_of(c)? {
                if filter.admits(kind) {
                    return Ok(vec![PinEntry {
                        cid: *c,
                        kind,
                        name,
                        via: None,
                    }]);
                }
            }
            if filter.admits(PinKind::Indirect) {
                if let Some(root) = self.find_indirect(c)? {
                    return Ok(vec![PinEntry {
                        cid: *c,
                        kind: PinKind::Indirect,
                        name: None,
                        via: Some(root),
                    }]);
                }
            }
            return Err(RepoError::NotPinned(*c));
        }
        let stored = self.stored_pins(PinFilter::All)?;
        let mut out: Vec<PinEntry> = stored
            .iter()
            .filter(|(_, k, _)| filter.admits(*k))
            .map(|(c, k, n)| PinEntry {
                cid: *c,
                kind: *k,
                name: n.clone(),
                via: None,
            })
            .collect();
        let roots: Vec<Cid> = stored
            .iter()
            .filter(|(_, k, _)| *k == PinKind::Recursive)
            .map(|(c, _, _)| *c)
            .collect();
        if filter.admits(PinKind::Indirect) && !roots.is_empty() {
            let pinned: HashSet<Cid> = stored.iter().map(|(c, _, _)| *c).collect();
            let mut visited = Visited::new();
            walk_cids_from::<DagError, _>(self.inner.store.as_ref(), &roots, &mut visited, |c| {
                if !pinned.contains(c) {
                    out.push(PinEntry {
                        cid: *c,
                        kind: PinKind::Indirect,
                        name: None,
                        via: None,
                    });
                }
                Ok(())
            })?;
        }
        Ok(out)
    }

    /// `pin verify`: walks every recursive pin without stopping at the first problem and
    /// reports, per pin, the blocks that are missing, corrupt or undecodable (children of a bad
    /// block are not visited). Direct pins are checked for presence.
    pub fn pin_verify(&self) -> Result<Vec<PinVerifyEntry>, RepoError> {
        let store = self.inner.store.as_ref();
        let mut out = Vec::new();
        for (root, kind, _) in self.stored_pins(PinFilter::All)? {
            let mut bad = Vec::new();
            let mut visited = Visited::new();
            let mut stack = vec![root];
            while let Some(c) = stack.pop() {
                if !visited.insert(&c) {
                    continue;
                }
                let data = match store.get(&c) {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        bad.push((c, "block not found locally".to_string()));
                        continue;
                    }
                    Err(e) => {
                        bad.push((c, e.to_string()));
                        continue;
                    }
                };
                if kind == PinKind::Direct {
                    continue;
                }
                match crate::dag::links::links(&c, &data) {
                    Ok(children) => stack.extend(children.into_iter().rev()),
                    Err(e) => bad.push((c, e.to_string())),
                }
            }
            out.push(PinVerifyEntry {
                cid: root,
                ok: bad.is_empty(),
                bad_nodes: bad,
            });
        }
        Ok(out)
    }

    /// How `cid` is pinned, if at all (direct/recursive on the CID itself, else indirect).
    pub fn is_pinned(&self, cid: &Cid) -> Result<Option<PinKind>, RepoError> {
        if let Some((kind, _)) = self.pin_of(cid)? {
            return Ok(Some(kind));
        }
        Ok(self.find_indirect(cid)?.map(|_| PinKind::Indirect))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::pb::{PbLink, PbNode};
    use crate::dag::{DAG_PB_CODEC, RAW_CODEC};
    use crate::repo::mem_repo;
    use bytes::Bytes;
    use ipfs_kit_blockstore::{hash::HashFn, Block, Blockstore, MemoryBlockstore};
    use std::sync::Arc;

    fn put(repo: &Repo, codec: u64, data: Vec<u8>) -> Cid {
        let cid = Cid::new_v1(codec, HashFn::Sha2_256.digest(&data).unwrap());
        repo.blocks()
            .put(&Block::new(cid, Bytes::from(data)).unwrap())
            .unwrap();
        cid
    }

    fn node(repo: &Repo, kids: &[Cid]) -> Cid {
        let n = PbNode {
            links: kids
                .iter()
                .map(|c| PbLink {
                    cid: *c,
                    name: None,
                    tsize: None,
                })
                .collect(),
            data: None,
        };
        put(repo, DAG_PB_CODEC, n.encode())
    }

    #[test]
    fn add_ls_rm_semantics() {
        let (_d, repo) = mem_repo();
        let a = put(&repo, RAW_CODEC, b"a".to_vec());
        let b = put(&repo, RAW_CODEC, b"b".to_vec());
        let root = node(&repo, &[a, b]);
        repo.pin_add(&root, true, Some("root".into())).unwrap();
        repo.pin_add(&a, false, None).unwrap();
        assert_eq!(repo.is_pinned(&root).unwrap(), Some(PinKind::Recursive));
        assert_eq!(repo.is_pinned(&a).unwrap(), Some(PinKind::Direct));
        assert_eq!(repo.is_pinned(&b).unwrap(), Some(PinKind::Indirect));

        let all = repo.pin_ls(PinFilter::All, None).unwrap();
        // root recursive, a direct, b indirect (a is listed once, as direct).
        assert_eq!(all.len(), 3);
        let rec = repo.pin_ls(PinFilter::Recursive, None).unwrap();
        assert_eq!(
            rec,
            vec![PinEntry {
                cid: root,
                kind: PinKind::Recursive,
                name: Some("root".into()),
                via: None
            }]
        );
        let ind = repo.pin_ls(PinFilter::Indirect, Some(&b)).unwrap();
        assert_eq!(ind[0].via, Some(root));

        assert!(matches!(
            repo.pin_add(&root, false, None),
            Err(RepoError::AlreadyPinnedRecursively(_))
        ));
        assert!(
            matches!(repo.pin_rm(&b), Err(RepoError::PinnedIndirectly { root: r, .. }) if *r == root)
        );
        assert!(repo
            .pin_rm(&b)
            .unwrap_err()
            .to_string()
            .contains("is pinned indirectly under"));
        assert_eq!(repo.pin_rm(&root).unwrap(), PinKind::Recursive);
        assert!(matches!(repo.pin_rm(&b), Err(RepoError::NotPinned(_))));
        assert!(matches!(
            repo.pin_ls(PinFilter::All, Some(&b)),
            Err(RepoError::NotPinned(_))
        ));
        // Direct upgraded to recursive.
        repo.pin_add(&a, true, None).unwrap();
        assert_eq!(repo.is_pinned(&a).unwrap(), Some(PinKind::Recursive));
    }

    #[test]
    fn recursive_pin_of_incomplete_dag_names_the_missing_block() {
        let (_d, repo) = mem_repo();
        let a = put(&repo, RAW_CODEC, b"a".to_vec());
        let gone = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(b"gone").unwrap());
        let root = node(&repo, &[a, gone]);
        let err = repo.pin_add(&root, true, None).unwrap_err();
        assert!(
            matches!(err, RepoError::Dag(DagError::Missing(c)) if c == gone),
            "{err}"
        );
        assert!(repo.pin_ls(PinFilter::All, None).unwrap().is_empty());
        assert!(matches!(
            repo.pin_add(&gone, false, None),
            Err(RepoError::Dag(DagError::Missing(_)))
        ));
        let long = "x".repeat(PIN_NAME_BYTES_MAX + 1);
        assert!(matches!(
            repo.pin_add(&a, false, Some(long)),
            Err(RepoError::PinNameTooLong { .. })
        ));
    }

    fn many_direct_pins(n: u32) {
        let (_d, repo) = mem_repo();
        let entries: Vec<(Cid, PinKind, Option<String>)> = (0..n)
            .map(|i| {
                let mh = HashFn::Sha2_256.digest(&i.to_le_bytes()).unwrap();
                (Cid::new_v1(RAW_CODEC, mh), PinKind::Direct, None)
            })
            .collect();
        let t = std::time::Instant::now();
        repo.pins_insert_batch(&entries).unwrap();
        let inserted = t.elapsed();
        let t = std::time::Instant::now();
        let listed = repo.pin_ls(PinFilter::Direct, None).unwrap();
        let list = t.elapsed();
        assert_eq!(listed.len(), n as usize);
        assert_eq!(repo.pin_ls(PinFilter::All, None).unwrap().len(), n as usize);
        assert_eq!(
            repo.is_pinned(&entries[n as usize / 2].0).unwrap(),
            Some(PinKind::Direct)
        );
        eprintln!("{n} direct pins: insert {inserted:?}, list {list:?}");
    }

    #[test]
    fn lists_many_direct_pins() {
        many_direct_pins(50_000);
    }

    #[test]
    #[ignore = "slow in debug builds; run with --ignored"]
    fn lists_a_million_direct_pins() {
        many_direct_pins(1_000_000);
    }

    #[test]
    fn pin_verify_reports_missing_blocks_per_pin() {
        let (_d, repo) = mem_repo();
        let a = put(&repo, RAW_CODEC, b"a".to_vec());
        let b = put(&repo, RAW_CODEC, b"b".to_vec());
        let good = node(&repo, &[a]);
        let broken = node(&repo, &[a, b]);
        repo.pin_add(&good, true, None).unwrap();
        repo.pin_add(&broken, true, None).unwrap();
        repo.blocks().delete_many(&[b]).unwrap();
        let v = repo.pin_verify().unwrap();
        let by: std::collections::HashMap<Cid, &PinVerifyEntry> =
            v.iter().map(|e| (e.cid, e)).collect();
        assert!(by[&good].ok);
        assert!(!by[&broken].ok);
        assert_eq!(by[&broken].bad_nodes.len(), 1);
        assert_eq!(by[&broken].bad_nodes[0].0, b);
    }

    #[test]
    fn pin_update_moves_a_recursive_pin() {
        let (_d, repo) = mem_repo();
        let a = put(&repo, RAW_CODEC, b"a".to_vec());
        let b = put(&repo, RAW_CODEC, b"b".to_vec());
        let v1 = node(&repo, &[a]);
        let v2 = node(&repo, &[a, b]);
        assert!(matches!(
            repo.pin_update(&v1, &v2, true),
            Err(RepoError::NotPinnedRecursively(_))
        ));
        repo.pin_add(&v1, true, Some("site".into())).unwrap();
        repo.pin_update(&v1, &v2, true).unwrap();
        assert_eq!(repo.is_pinned(&v1).unwrap(), None);
        let l = repo.pin_ls(PinFilter::Recursive, None).unwrap();
        assert_eq!((l[0].cid, l[0].name.as_deref()), (v2, Some("site")));
        let gone = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(b"gone").unwrap());
        let v3 = node(&repo, &[gone]);
        assert!(matches!(
            repo.pin_update(&v2, &v3, false),
            Err(RepoError::Dag(DagError::Missing(_)))
        ));
        repo.pin_update(&v2, &v1, false).unwrap();
        assert_eq!(repo.pin_ls(PinFilter::Recursive, None).unwrap().len(), 2);
    }

    const KILL9_DIR_ENV: &str = "IPFS_KIT_TEST_KILL9_DIR";

    /// Child half of `pins_survive_kill_9`: pins, reports, then waits to be killed.
    #[test]
    #[ignore = "spawned by pins_survive_kill_9"]
    fn kill9_child() {
        let Some(dir) = std::env::var_os(KILL9_DIR_ENV) else {
            return;
        };
        let repo = Repo::init(std::path::Path::new(&dir)).unwrap();
        let a = put(&repo, RAW_CODEC, b"survivor".to_vec());
        repo.pin_add(&a, true, Some("kept".into())).unwrap();
        println!("PINNED {a}");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(120));
    }

    #[test]
    fn pins_survive_kill_9() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let repo_dir = dir.path().join("repo");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "repo::pin::tests::kill9_child",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(KILL9_DIR_ENV, &repo_dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut pinned = None;
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(c) = line.strip_prefix("PINNED ") {
                pinned = Some(c.parse::<Cid>().unwrap());
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let cid = pinned.expect("child never pinned");
        let repo = Repo::open(&repo_dir).unwrap();
        assert_eq!(repo.is_pinned(&cid).unwrap(), Some(PinKind::Recursive));
        assert!(repo.blocks().has(&cid).unwrap());
        assert_eq!(
            repo.pin_ls(PinFilter::All, None).unwrap()[0]
                .name
                .as_deref(),
            Some("kept")
        );
    }

    #[test]
    fn pins_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Blockstore> = Arc::new(MemoryBlockstore::new());
        let cid = {
            let repo = Repo::with_store(dir.path(), store.clone()).unwrap();
            let a = put(&repo, RAW_CODEC, b"x".to_vec());
            repo.pin_add(&a, false, Some("n".into())).unwrap();
            a
        };
        let repo = Repo::with_store(dir.path(), store).unwrap();
        assert_eq!(
            repo.pin_ls(PinFilter::All, None).unwrap()[0]
                .name
                .as_deref(),
            Some("n")
        );
        assert_eq!(repo.is_pinned(&cid).unwrap(), Some(PinKind::Direct));
    }

    #[derive(Clone, Debug)]
    enum PinOp {
        Add { target: usize, recursive: bool },
        Rm { target: usize },
    }

    /// Pins against a model: every sequence of adds and removes leaves the same pin set, the
    /// same `is_pinned` answers and the same errors as a plain map of root -> kind.
    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        fn op() -> impl Strategy<Value = PinOp> {
            prop_oneof![
                (0usize..7, any::<bool>())
                    .prop_map(|(target, recursive)| PinOp::Add { target, recursive }),
                (0usize..7).prop_map(|target| PinOp::Rm { target }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
            #[test]
            fn pins_match_a_model(ops in proptest::collection::vec(op(), 1..30)) {
                let (_d, repo) = mem_repo();
                // Targets: leaves l0, l1, l2; nodes n0 = [l0, l1], n1 = [l1, l2]; top = [n0, n1];
                // and one CID whose block is absent.
                let l: Vec<Cid> = (0..3u8).map(|i| put(&repo, RAW_CODEC, vec![i; 4])).collect();
                let n0 = node(&repo, &[l[0], l[1]]);
                let n1 = node(&repo, &[l[1], l[2]]);
                let top = node(&repo, &[n0, n1]);
                let absent = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(b"absent").unwrap());
                let targets = [l[0], l[1], l[2], n0, n1, top, absent];
                let children: HashMap<Cid, Vec<Cid>> =
                    [(n0, vec![l[0], l[1]]), (n1, vec![l[1], l[2]]), (top, vec![n0, n1])].into();
                let below = |root: Cid| {
                    let mut out = Vec::new();
                    let mut stack = children.get(&root).cloned().unwrap_or_default();
                    while let Some(c) = stack.pop() {
                        out.push(c);
                        stack.extend(children.get(&c).cloned().unwrap_or_default());
                    }
                    out
                };
                let mut model: HashMap<Cid, PinKind> = HashMap::new();
                for op in ops {
                    match op {
                        PinOp::Add { target, recursive } => {
                            let c = targets[target];
                            let r = repo.pin_add(&c, recursive, None);
                            if c == absent {
                                prop_assert!(matches!(r, Err(RepoError::Dag(DagError::Missing(_)))));
                            } else if !recursive && model.get(&c) == Some(&PinKind::Recursive) {
                                prop_assert!(matches!(r, Err(RepoError::AlreadyPinnedRecursively(_))));
                            } else {
                                prop_assert!(r.is_ok());
                                model.insert(c, if recursive { PinKind::Recursive } else { PinKind::Direct });
                            }
                        }
                        PinOp::Rm { target } => {
                            let c = targets[target];
                            let r = repo.pin_rm(&c);
                            match model.remove(&c) {
                                Some(kind) => prop_assert_eq!(r.ok(), Some(kind)),
                                None => {
                                    let indirect = model.iter().any(|(root, k)| {
                                        *k == PinKind::Recursive && below(*root).contains(&c)
                                    });
                                    if indirect {
                                        prop_assert!(matches!(r, Err(RepoError::PinnedIndirectly { .. })), "{:?}", r);
                                    } else {
                                        prop_assert!(matches!(r, Err(RepoError::NotPinned(_))), "{:?}", r);
                                    }
                                }
                            }
                        }
                    }
                    let mut listed: Vec<(Cid, PinKind)> = repo
                        .pin_ls(PinFilter::All, None)
                        .unwrap()
                        .into_iter()
                        .filter(|e| e.kind != PinKind::Indirect)
                        .map(|e| (e.cid, e.kind))
                        .collect();
                    let mut expect: Vec<(Cid, PinKind)> = model.iter().map(|(c, k)| (*c, *k)).collect();
                    listed.sort_by_key(|(c, _)| c.to_bytes());
                    expect.sort_by_key(|(c, _)| c.to_bytes());
                    prop_assert_eq!(listed, expect);
                    for c in &targets {
                        let want = match model.get(c) {
                            Some(k) => Some(*k),
                            None if model.iter().any(|(root, k)| {
                                *k == PinKind::Recursive && below(*root).contains(c)
                            }) => Some(PinKind::Indirect),
                            None => None,
                        };
                        prop_assert_eq!(repo.is_pinned(c).unwrap(), want, "{}", c);
                    }
                }
            }
        }
    }
}
