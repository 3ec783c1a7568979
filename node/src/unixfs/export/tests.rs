//! Exporter tests: hand-built file DAGs (cat ranges), hand-crafted hostile directories
//! (path traversal), HAMT resolution, and import -> get round trips of real trees.

use super::*;
use crate::dag::pb::PbLink;
use crate::unixfs::dir::{build_directory, build_symlink, import_path, import_path_sharded};
use crate::unixfs::hamt::DirEntry;
use crate::unixfs::{ImportOptions, Imported, StoreSink};
use ipfs_kit_blockstore::hash::HashFn;
use ipfs_kit_blockstore::{Block, MemoryBlockstore};

fn put(store: &MemoryBlockstore, codec: u64, bytes: Vec<u8>) -> Cid {
    let mh = HashFn::Sha2_256.digest(&bytes).unwrap();
    let cid = if codec == DAG_PB_CODEC {
        Cid::new_v0(mh).unwrap()
    } else {
        Cid::new_v1(codec, mh)
    };
    store
        .put(&Block::new(cid, Bytes::from(bytes)).unwrap())
        .unwrap();
    cid
}

/// A file DAG with `chunk`-byte leaves and `fanout` links per inner node (not kubo's exact
/// layout; a valid UnixFS file DAG to read back). Returns (cid, tsize).
fn build_file(
    store: &MemoryBlockstore,
    data: &[u8],
    chunk: usize,
    fanout: usize,
    raw: bool,
) -> Cid {
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![data]
    } else {
        data.chunks(chunk).collect()
    };
    let mut level: Vec<(Cid, u64, u64)> = chunks
        .into_iter()
        .map(|c| {
            if raw {
                (
                    put(store, RAW_CODEC, c.to_vec()),
                    c.len() as u64,
                    c.len() as u64,
                )
            } else {
                let mut fs = UnixFsData::new(DataType::File);
                fs.data = Some(Bytes::copy_from_slice(c));
                fs.filesize = Some(c.len() as u64);
                let node = PbNode {
                    links: vec![],
                    data: Some(Bytes::from(fs.encode())),
                };
                let b = node.encode();
                let n = b.len() as u64;
                (put(store, DAG_PB_CODEC, b), c.len() as u64, n)
            }
        })
        .collect();
    if level.len() == 1 {
        return level[0].0;
    }
    while level.len() > 1 {
        level = level
            .chunks(fanout)
            .map(|kids| {
                let mut fs = UnixFsData::new(DataType::File);
                fs.blocksizes = kids.iter().map(|k| k.1).collect();
                fs.filesize = Some(fs.blocksizes.iter().sum());
                let node = PbNode {
                    links: kids
                        .iter()
                        .map(|k| PbLink {
                            cid: k.0,
                            name: Some(String::new()),
                            tsize: Some(k.2),
                        })
                        .collect(),
                    data: Some(Bytes::from(fs.encode())),
                };
                let b = node.encode();
                let t = b.len() as u64 + kids.iter().map(|k| k.2).sum::<u64>();
                (put(store, DAG_PB_CODEC, b), fs.filesize.unwrap(), t)
            })
            .collect();
    }
    level[0].0
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn cat_vec(store: &MemoryBlockstore, cid: &Cid, off: u64, len: Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    let n = cat(store, cid, off, len, &mut out).unwrap();
    assert_eq!(n as usize, out.len());
    out
}

#[test]
fn cat_ranges_match_source() {
    let store = MemoryBlockstore::default();
    let data = pattern(100_003);
    for raw in [true, false] {
        // chunk 1000, fanout 7: three levels, leaves not aligned to anything
        let cid = build_file(&store, &data, 1000, 7, raw);
        assert_eq!(cat_vec(&store, &cid, 0, None), data);
        let n = data.len() as u64;
        let cases: &[(u64, Option<u64>)] = &[
            (0, Some(0)),
            (0, Some(1)),
            (999, Some(2)),     // across a leaf boundary
            (1000, Some(1000)), // exactly one leaf
            (6999, Some(7002)), // across an inner-node boundary
            (n - 1, None),
            (n - 1, Some(10)),
            (n, None),
            (n + 5, Some(3)),
            (12_345, Some(u64::MAX)),
            (50_000, Some(0)),
        ];
        for &(off, len) in cases {
            let lo = (off as usize).min(data.len());
            let hi = match len {
                Some(l) => lo.saturating_add(l.min(usize::MAX as u64) as usize),
                None => data.len(),
            }
            .min(data.len());
            assert_eq!(
                cat_vec(&store, &cid, off, len),
                &data[lo..hi],
                "raw={raw} off={off} len={len:?}"
            );
        }
    }
}

#[test]
fn cat_with_any_worker_count_gives_the_same_bytes() {
    let store = MemoryBlockstore::default();
    let data = pattern(100_003);
    let cid = build_file(&store, &data, 1000, 7, true);
    // 0 and past the window are clamped; 1 reads one block at a time.
    for workers in [0, 1, FETCH_WORKERS, REMOTE_FETCH_WORKERS, 1000] {
        for (off, len) in [(0u64, None), (999, Some(2)), (6999, Some(50_000))] {
            let mut out = Vec::new();
            let n = cat_with(&store, &cid, off, len, workers, &mut out).unwrap();
            let lo = off as usize;
            let hi = len.map_or(data.len(), |l| lo + l as usize);
            assert_eq!(n as usize, out.len());
            assert_eq!(
                out,
                &data[lo..hi],
                "workers={workers} off={off} len={len:?}"
            );
        }
    }
}

#[test]
fn cat_single_blocks_and_identity() {
    let store = MemoryBlockstore::default();
    let raw = put(&store, RAW_CODEC, b"hello world".to_vec());
    assert_eq!(cat_vec(&store, &raw, 6, None), b"world");
    assert_eq!(cat_vec(&store, &raw, 3, Some(2)), b"lo");
    let id = Cid::new_v1(
        RAW_CODEC,
        HashFn::from_code(ipfs_kit_blockstore::hash::IDENTITY)
            .unwrap()
            .digest(b"inline!")
            .unwrap(),
    );
    assert_eq!(cat_vec(&store, &id, 0, None), b"inline!");
    let empty = build_file(&store, b"", 10, 2, false);
    assert_eq!(cat_vec(&store, &empty, 0, None), b"");
}

#[test]
fn cat_refuses_directories_and_missing_blocks() {
    let store = MemoryBlockstore::default();
    let sink = StoreSink(&store);
    let (dir, _) = build_directory(vec![], 0, &ImportOptions::default(), &sink).unwrap();
    let err = cat(&store, &dir, 0, None, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ExportError::IsADirectory));
    assert_eq!(err.to_string(), "this dag node is a directory");
    // A file whose second leaf is missing: NotFound, after the first leaf's bytes.
    let other = MemoryBlockstore::default();
    let data = pattern(5000);
    let cid = build_file(&other, &data, 1000, 10, true);
    let root = other.get(&cid).unwrap().unwrap();
    store.put(&Block::new(cid, root.clone()).unwrap()).unwrap();
    let node = PbNode::decode(&root).unwrap();
    let first = node.links[0].cid;
    store
        .put(&Block::new(first, other.get(&first).unwrap().unwrap()).unwrap())
        .unwrap();
    let mut out = Vec::new();
    let err = cat(&store, &cid, 0, None, &mut out).unwrap_err();
    assert!(
        matches!(err, ExportError::NotFound(c) if c == node.links[1].cid),
        "{err}"
    );
}

#[test]
fn cat_detects_lying_blocksizes() {
    let store = MemoryBlockstore::default();
    let leaf = put(&store, RAW_CODEC, vec![7u8; 100]);
    let mut fs = UnixFsData::new(DataType::File);
    fs.blocksizes = vec![100, 50];
    fs.filesize = Some(150);
    let node = PbNode {
        links: vec![
            PbLink {
                cid: leaf,
                name: Some(String::new()),
                tsize: Some(100),
            },
            PbLink {
                cid: leaf,
                name: Some(String::new()),
                tsize: Some(100),
            },
        ],
        data: Some(Bytes::from(fs.encode())),
    };
    let cid = put(&store, DAG_PB_CODEC, node.encode());
    let err = cat(&store, &cid, 0, None, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, ExportError::Decode { .. }), "{err}");
    // blocksizes count must match the link count
    fs.blocksizes = vec![100];
    fs.filesize = Some(100);
    let node = PbNode {
        links: node.links,
        data: Some(Bytes::from(fs.encode())),
    };
    let cid = put(&store, DAG_PB_CODEC, node.encode());
    assert!(matches!(
        cat(&store, &cid, 0, None, &mut Vec::new()),
        Err(ExportError::Decode { .. })
    ));
}

fn dir_node(store: &MemoryBlockstore, links: Vec<(&str, Cid)>) -> Cid {
    let node = PbNode {
        links: links
            .into_iter()
            .map(|(n, c)| PbLink {
                cid: c,
                name: Some(n.to_owned()),
                tsize: Some(1),
            })
            .collect(),
        data: Some(Bytes::from(UnixFsData::new(DataType::Directory).encode())),
    };
    put(store, DAG_PB_CODEC, node.encode())
}

/// CVE-2020-26279: a DAG naming an entry `..`, `.`, `a/b`, `""` or with a NUL must not make
/// `get` write outside the target.
#[test]
fn get_refuses_traversal_names() {
    let store = MemoryBlockstore::default();
    let file = put(&store, RAW_CODEC, b"pwned".to_vec());
    for bad in ["..", ".", "", "../escape", "a/b", "nul\0name", "/abs"] {
        let tmp = tempfile::tempdir().unwrap();
        let inner = dir_node(&store, vec![(bad, file)]);
        let root = dir_node(&store, vec![("sub", inner)]);
        let out = tmp.path().join("out");
        let err = get(&store, &root, &out, &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, ExportError::UnsafeName { ref name } if name == bad),
            "{bad:?}: {err}"
        );
        assert!(!tmp.path().join("escape").exists());
        assert!(!tmp.path().join("out").join("escape").exists());
        let mut found = Vec::new();
        for e in walk(tmp.path()) {
            found.push(e);
        }
        assert!(
            found
                .iter()
                .all(|p| std::fs::symlink_metadata(p).unwrap().is_dir()),
            "{bad:?}: a file was written: {found:?}"
        );
    }
}

/// A DAG with a symlink `a -> /tmp/...` and then a directory or file also named `a` must not
/// write through the symlink.
#[test]
fn get_never_writes_through_a_dag_symlink() {
    let store = MemoryBlockstore::default();
    let sink = StoreSink(&store);
    let victim = tempfile::tempdir().unwrap();
    let (link, _) = build_symlink(
        victim.path().as_os_str().as_bytes(),
        &ImportOptions::default(),
        &sink,
    )
    .unwrap();
    let file = put(&store, RAW_CODEC, b"pwned".to_vec());
    let inner = dir_node(&store, vec![("x", file)]);
    for second in [inner, file] {
        let root = dir_node(&store, vec![("a", link), ("a", second)]);
        let tmp = tempfile::tempdir().unwrap();
        let err = get(&store, &root, &tmp.path().join("out"), &mut |_| {}).unwrap_err();
        assert!(matches!(err, ExportError::Io { .. }), "{err}");
        assert_eq!(std::fs::read_dir(victim.path()).unwrap().count(), 0);
    }
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if std::fs::symlink_metadata(&e).unwrap().is_dir() {
            out.extend(walk(&e));
        }
        out.push(e);
    }
    out
}

#[test]
fn resolve_path_forms_and_traversal() {
    let store = MemoryBlockstore::default();
    let f = put(&store, RAW_CODEC, b"x".to_vec());
    let b = dir_node(&store, vec![("f", f)]);
    let a = dir_node(&store, vec![("b", b), ("sp ace ü", f)]);
    let root = dir_node(&store, vec![("a", a)]);
    let r = root.to_string();
    for p in [
        format!("{r}/a/b/f"),
        format!("/ipfs/{r}/a/b/f"),
        format!("/ipfs/{r}/a/b/f/"),
        format!("{r}/a/./b//f"),
        format!("{r}/a/b/../b/f"),
    ] {
        assert_eq!(resolve_path(&store, &p).unwrap(), f, "{p}");
    }
    assert_eq!(resolve_path(&store, &r).unwrap(), root);
    assert_eq!(resolve_path(&store, &format!("/ipfs/{r}")).unwrap(), root);
    assert_eq!(resolve_path(&store, &format!("{r}/a/sp ace ü")).unwrap(), f);
    for p in [
        format!("/ipfs/{r}/../x"),
        format!("{r}/a/../../x"),
        format!("{r}/.."),
    ] {
        assert!(
            matches!(resolve_path(&store, &p), Err(ExportError::PathTraversal(_))),
            "{p}"
        );
    }
    assert!(matches!(
        resolve_path(&store, &format!("{r}/nope")),
        Err(ExportError::NoSuchLink { .. })
    ));
    assert!(matches!(
        resolve_path(&store, &format!("{r}/a/b/f/deeper")),
        Err(ExportError::NotADirectory(_))
    ));
    assert!(matches!(
        resolve_path(&store, "/ipns/foo"),
        Err(ExportError::BadPath { .. })
    ));
    assert!(matches!(
        resolve_path(&store, "notacid/x"),
        Err(ExportError::BadPath { .. })
    ));
}

#[test]
fn hamt_of_5000_entries_resolves_every_name() {
    let store = MemoryBlockstore::default();
    let sink = StoreSink(&store);
    let opts = ImportOptions::default();
    let entries: Vec<DirEntry> = (0..5000)
        .map(|i| {
            let cid = put(&store, RAW_CODEC, format!("content {i}").into_bytes());
            DirEntry {
                name: format!("file-{i}-ü"),
                cid,
                tsize: 1,
            }
        })
        .collect();
    // 5000 * (len(name) + 36) is about 245 KB, under kubo's 256 KiB: force sharding with a
    // 1-byte threshold (as t0260 does); the default threshold is exercised below.
    let (root, _) = build_directory(entries.clone(), 1, &opts, &sink).unwrap();
    let Node::Pb { fs, .. } = load(&store, &root).unwrap() else {
        panic!("raw root")
    };
    assert_eq!(fs.kind, DataType::HamtShard);
    for e in &entries {
        let got = resolve_path(&store, &format!("/ipfs/{root}/{}", e.name)).unwrap();
        assert_eq!(got, e.cid, "{}", e.name);
    }
    assert!(matches!(
        resolve_path(&store, &format!("{root}/file-5000-ü")),
        Err(ExportError::NoSuchLink { .. })
    ));
    let listed = ls(&store, &root).unwrap();
    assert_eq!(listed.len(), 5000);
    assert!(listed.iter().all(|e| e.kind == EntryKind::Raw));
    let mut names: Vec<_> = listed.into_iter().map(|e| e.name).collect();
    names.sort();
    let mut want: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
    want.sort();
    assert_eq!(names, want);
    let tmp = tempfile::tempdir().unwrap();
    get(&store, &root, &tmp.path().join("out"), &mut |_| {}).unwrap();
    for i in [0, 77, 4999] {
        assert_eq!(
            std::fs::read(tmp.path().join(format!("out/file-{i}-ü"))).unwrap(),
            format!("content {i}").as_bytes()
        );
    }
}

// ------------------------------------------- round trips through the importer ----

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("small.txt"), b"hello\n").unwrap();
    std::fs::write(root.join("empty-file"), b"").unwrap();
    std::fs::write(root.join("sp ace ü.bin"), pattern(300_000)).unwrap();
    std::fs::write(root.join("sub/deeper/big"), pattern(1_300_000)).unwrap();
    std::fs::write(root.join("sub/.hidden"), b"secret").unwrap();
    std::os::unix::fs::symlink("../small.txt", root.join("sub/link")).unwrap();
    std::os::unix::fs::symlink("/does/not/exist", root.join("dangling")).unwrap();
}

fn import_tree(
    path: &Path,
    opts: &ImportOptions,
    store: &MemoryBlockstore,
) -> (Imported, Vec<Imported>) {
    let mut added = Vec::new();
    let root = import_path(
        path,
        opts,
        &StoreSink(store),
        &mut |i| added.push(i.clone()),
        &|_| {},
    )
    .unwrap();
    (root, added)
}

fn assert_same_tree(a: &Path, b: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    names.sort();
    let mut got: Vec<_> = std::fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    got.sort();
    assert_eq!(names, got, "{}", a.display());
    for n in names {
        let (pa, pb) = (a.join(&n), b.join(&n));
        let ma = std::fs::symlink_metadata(&pa).unwrap();
        let mb = std::fs::symlink_metadata(&pb).unwrap();
        if ma.file_type().is_symlink() {
            assert!(mb.file_type().is_symlink());
            assert_eq!(
                std::fs::read_link(&pa).unwrap(),
                std::fs::read_link(&pb).unwrap()
            );
        } else if ma.is_dir() {
            assert!(mb.is_dir());
            assert_same_tree(&pa, &pb);
        } else {
            assert_eq!(std::fs::read(&pa).unwrap(), std::fs::read(&pb).unwrap());
        }
    }
}

#[test]
fn import_then_get_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tree");
    make_tree(&src);
    for opts in [
        ImportOptions::default(),
        ImportOptions {
            cid_version: Some(cid::Version::V1),
            ..ImportOptions::default()
        },
        ImportOptions {
            inline: true,
            raw_leaves: Some(true),
            ..ImportOptions::default()
        },
    ] {
        let store = MemoryBlockstore::default();
        let (root, added) = import_tree(&src, &opts, &store);
        let paths: Vec<&str> = added.iter().map(|a| a.path.as_str()).collect();
        // kubo's order: files (and symlinks) depth first by name, then directories bottom-up.
        assert_eq!(
            paths,
            [
                "tree/dangling",
                "tree/empty-file",
                "tree/small.txt",
                "tree/sp ace ü.bin",
                "tree/sub/deeper/big",
                "tree/sub/link",
                "tree/empty",
                "tree/sub/deeper",
                "tree/sub",
                "tree",
            ]
        );
        assert_eq!(added.last().unwrap(), &root);
        let out = tmp.path().join(format!("out-{}", root.cid));
        let mut last = 0;
        get(&store, &root.cid, &out, &mut |n| last = n).unwrap();
        assert_eq!(last, 6 + 300_000 + 1_300_000);
        assert_same_tree(&src, &out);
        // cat through paths, with ranges, against the source bytes
        let big = pattern(1_300_000);
        let cid = resolve_path(&store, &format!("/ipfs/{}/sub/deeper/big", root.cid)).unwrap();
        for (off, len) in [
            (0u64, 262_144u64),
            (262_143, 3),
            (1_299_999, 10),
            (700_000, 300_000),
        ] {
            let lo = off as usize;
            let hi = (lo + len as usize).min(big.len());
            assert_eq!(cat_vec(&store, &cid, off, Some(len)), &big[lo..hi]);
        }
        // ls shows files with their sizes, directories with 0
        let listing = ls(&store, &root.cid).unwrap();
        let names: Vec<_> = listing.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dangling",
                "empty",
                "empty-file",
                "small.txt",
                "sp ace ü.bin",
                "sub"
            ]
        );
        let small = listing.iter().find(|e| e.name == "small.txt").unwrap();
        assert_eq!(small.size, 6);
        let sub = listing.iter().find(|e| e.name == "sub").unwrap();
        assert_eq!((sub.kind, sub.size), (EntryKind::Directory, 0));
        let link = listing.iter().find(|e| e.name == "dangling").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink);
    }
}

#[test]
fn hidden_files_only_with_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tree");
    make_tree(&src);
    let store = MemoryBlockstore::default();
    let opts = ImportOptions {
        hidden: true,
        ..ImportOptions::default()
    };
    let (root, added) = import_tree(&src, &opts, &store);
    assert!(added.iter().any(|a| a.path == "tree/sub/.hidden"));
    let c = resolve_path(&store, &format!("{}/sub/.hidden", root.cid)).unwrap();
    assert_eq!(cat_vec(&store, &c, 0, None), b"secret");
}

/// kubo test/sharness/t0044-add-symlink.sh: `ipfs add -r files` with a file and two symlinks.
#[test]
fn kubo_vector_add_symlinks_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    std::fs::create_dir_all(files.join("foo")).unwrap();
    std::fs::create_dir_all(files.join("bar")).unwrap();
    std::fs::write(files.join("foo/baz"), b"some text\n").unwrap();
    std::os::unix::fs::symlink("files/foo/baz", files.join("bar/baz")).unwrap();
    std::os::unix::fs::symlink("files/does/not/exist", files.join("bad")).unwrap();
    let store = MemoryBlockstore::default();
    let (root, _) = import_tree(&files, &ImportOptions::default(), &store);
    assert_eq!(
        root.cid.to_string(),
        "QmWdiHKoeSW8G1u7ATCgpx4yMoUhYaJBQGkyPLkS9goYZ8"
    );
}

/// kubo test/sharness/t0045-ls.sh (`test_ls_cmd_raw_leaves`): `ipfs add --raw-leaves -r
/// somedir` with `somedir/foo` = "bar\n".
#[test]
fn kubo_vector_raw_leaves_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("somedir");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("foo"), b"bar\n").unwrap();
    let store = MemoryBlockstore::default();
    let opts = ImportOptions {
        raw_leaves: Some(true),
        ..ImportOptions::default()
    };
    let (root, _) = import_tree(&d, &opts, &store);
    assert_eq!(
        root.cid.to_string(),
        "QmThNTdtKaVoCVrYmM5EBS6U3S5vfKFue2TxbxxAxRcKKE"
    );
    let l = ls(&store, &root.cid).unwrap();
    assert_eq!(l.len(), 1);
    let want: Cid = "zb2rhf6GzX4ckKZtjy8yy8iyq1KttCrRyqDedD6xubhY3sw2F"
        .parse()
        .unwrap();
    assert_eq!(l[0].cid, want);
    assert_eq!((l[0].size, l[0].name.as_str()), (4, "foo"));
}

/// kubo test/sharness/t0260-sharding.sh: 2000 files `file$i` holding "$i\n", added unsharded
/// (threshold 1G), sharded (threshold 1B), and sharded with CIDv1.
#[test]
fn kubo_vector_sharding() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("testdata");
    std::fs::create_dir(&d).unwrap();
    for i in 1..=2000 {
        std::fs::write(d.join(format!("file{i}")), format!("{i}\n")).unwrap();
    }
    let store = MemoryBlockstore::default();
    let run = |opts: &ImportOptions, threshold: u64| {
        import_path_sharded(
            &d,
            opts,
            threshold,
            &StoreSink(&store),
            &mut |_| {},
            &|_| {},
        )
        .unwrap()
        .cid
        .to_string()
    };
    let v0 = ImportOptions::default();
    assert_eq!(
        run(&v0, 1 << 30),
        "QmavrTrQG4VhoJmantURAYuw3bowq3E2WcvP36NRQDAC1N"
    );
    let sharded = run(&v0, 1);
    assert_eq!(sharded, "QmSCJD1KYLhVVHqBK3YyXuoEqHt7vggyJhzoFYbT8v1XYL");
    assert_eq!(
        resolve_path(&store, &format!("/ipfs/{sharded}/file100"))
            .unwrap()
            .to_string(),
        "QmZ3RfWk1u5LEGYLHA633B5TNJy3Du27K6Fny9wcxpowGS"
    );
    let v1 = ImportOptions {
        cid_version: Some(cid::Version::V1),
        ..ImportOptions::default()
    };
    assert_eq!(
        run(&v1, 1),
        "bafybeibiemewfzzdyhq2l74wrd6qj2oz42usjlktgnlqv4yfawgouaqn4u"
    );
    // Sharded and unsharded list the same entries (t0260 "sharded and unsharded output look
    // the same").
    let mut a = ls(&store, &sharded.parse().unwrap()).unwrap();
    let mut b = ls(
        &store,
        &"QmavrTrQG4VhoJmantURAYuw3bowq3E2WcvP36NRQDAC1N"
            .parse()
            .unwrap(),
    )
    .unwrap();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(a.len(), 2000);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((&x.name, x.cid, x.size), (&y.name, y.cid, y.size));
    }
}

/// With kubo's default threshold (256 KiB), a directory of 5,000 long-named files becomes a
/// HAMT (5000 * (len(name) + 34) > 262144) and round-trips.
#[test]
fn big_directory_shards_at_default_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("big");
    std::fs::create_dir(&d).unwrap();
    let long = "n".repeat(40);
    for i in 0..5000 {
        std::fs::write(d.join(format!("{long}{i:05}")), format!("{i}")).unwrap();
    }
    let store = MemoryBlockstore::default();
    let (root, added) = import_tree(&d, &ImportOptions::default(), &store);
    assert_eq!(added.len(), 5001);
    let Node::Pb { fs, .. } = load(&store, &root.cid).unwrap() else {
        panic!()
    };
    assert_eq!(fs.kind, DataType::HamtShard);
    for i in (0..5000).step_by(7) {
        let c = resolve_path(&store, &format!("{}/{long}{i:05}", root.cid)).unwrap();
        assert_eq!(cat_vec(&store, &c, 0, None), format!("{i}").as_bytes());
    }
    let out = tmp.path().join("out");
    get(&store, &root.cid, &out, &mut |_| {}).unwrap();
    assert_same_tree(&d, &out);
}

/// Throughput of `cat` from a memory store (every block verified on read). Run with
/// `cargo test -p ipfs-kit --lib cat_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn cat_throughput() {
    let size = 512 << 20;
    let data = pattern(size);
    for opts in [
        ImportOptions::default(),
        ImportOptions {
            cid_version: Some(cid::Version::V1),
            ..ImportOptions::default()
        },
    ] {
        let store = MemoryBlockstore::default();
        let root = crate::unixfs::file::import_file(&data[..], &opts, &StoreSink(&store), &|_| {})
            .unwrap();
        struct Sink(u64);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0 += b.len() as u64;
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let mut out = Sink(0);
            let n = cat(&store, &root.cid, 0, None, &mut out).unwrap();
            assert_eq!(n, size as u64);
            best = best.min(t.elapsed().as_secs_f64());
        }
        eprintln!(
            "cat {} MiB ({:?} leaves): {:.0} MB/s",
            size >> 20,
            opts.version(),
            size as f64 / best / 1e6
        );
    }
}

/// LIMITS.md: every bound answers limit+1 with a typed error.
#[test]
fn limits_plus_one_are_typed_errors() {
    let store = MemoryBlockstore::default();
    let f = put(&store, RAW_CODEC, b"x".to_vec());
    let root = dir_node(&store, vec![("a", f)]);
    // path segments
    let long = format!("{root}{}", "/.".repeat(PATH_SEGMENTS_MAX));
    assert!(matches!(
        resolve_path(&store, &long),
        Err(ExportError::BadPath { .. })
    ));
    let ok = format!("{root}{}/a", "/.".repeat(PATH_SEGMENTS_MAX - 2));
    assert_eq!(resolve_path(&store, &ok).unwrap(), f);
    // file DAG depth: a chain of DAG_DEPTH_MAX + 2 one-child nodes
    let mut cid = f;
    for _ in 0..DAG_DEPTH_MAX + 2 {
        let mut fs = UnixFsData::new(DataType::File);
        fs.blocksizes = vec![1];
        fs.filesize = Some(1);
        let node = PbNode {
            links: vec![PbLink {
                cid,
                name: Some(String::new()),
                tsize: Some(1),
            }],
            data: Some(Bytes::from(fs.encode())),
        };
        cid = put(&store, DAG_PB_CODEC, node.encode());
    }
    assert!(matches!(
        cat(&store, &cid, 0, None, &mut Vec::new()),
        Err(ExportError::TooDeep)
    ));
    // symlink target of SYMLINK_TARGET_BYTES_MAX + 1 bytes
    let sink = StoreSink(&store);
    let (link, _) = build_symlink(
        &vec![b'a'; SYMLINK_TARGET_BYTES_MAX + 1],
        &ImportOptions::default(),
        &sink,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        get(&store, &link, &tmp.path().join("l"), &mut |_| {}),
        Err(ExportError::Decode { .. })
    ));
    // a stored HAMT node with fanout 2048 (CVE-2023-23625)
    let mut fs = UnixFsData::new(DataType::HamtShard);
    fs.fanout = Some(2 * crate::unixfs::hamt::HAMT_FANOUT_MAX);
    fs.hash_type = Some(0x22);
    let bad = put(
        &store,
        DAG_PB_CODEC,
        PbNode {
            links: vec![],
            data: Some(Bytes::from(fs.encode())),
        }
        .encode(),
    );
    assert!(matches!(
        resolve_path(&store, &format!("{bad}/x")),
        Err(ExportError::Decode { .. })
    ));
    assert!(matches!(ls(&store, &bad), Err(ExportError::Decode { .. })));
}

/// kubo test/sharness/t0045-ls.sh (`test_ls_cmd`): the whole `ipfs add -r testData` output,
/// in order, and `ipfs ls` sizes. Files come from go-random (`random 128 42`), reproduced by
/// the file importer's `gorand`.
#[test]
fn kubo_vector_add_r_output_and_ls() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("testData");
    std::fs::create_dir_all(d.join("d1")).unwrap();
    std::fs::create_dir_all(d.join("d2")).unwrap();
    std::fs::write(d.join("f1"), b"test\n").unwrap();
    std::fs::write(d.join("f2"), b"data\n").unwrap();
    std::fs::write(d.join("d1/a"), b"hello\n").unwrap();
    let go_random = crate::unixfs::file::gorand::go_random;
    std::fs::write(d.join("d1/128"), go_random(128, 42)).unwrap();
    std::fs::write(d.join("d2/a"), b"world\n").unwrap();
    std::fs::write(d.join("d2/1024"), go_random(1024, 42)).unwrap();
    let store = MemoryBlockstore::default();
    let (root, added) = import_tree(&d, &ImportOptions::default(), &store);
    let lines: Vec<String> = added
        .iter()
        .map(|a| format!("added {} {}", a.cid, a.path))
        .collect();
    assert_eq!(
        lines,
        [
            "added QmQNd6ubRXaNG6Prov8o6vk3bn6eWsj9FxLGrAVDUAGkGe testData/d1/128",
            "added QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN testData/d1/a",
            "added QmbQBUSRL9raZtNXfpTDeaxQapibJEG6qEY8WqAN22aUzd testData/d2/1024",
            "added QmaRGe7bVmVaLmxbrMiVNXqW4pRNNp3xq7hFtyRKA3mtJL testData/d2/a",
            "added QmeomffUNfmQy76CQGy9NdmqEnnHU9soCexBnGU3ezPHVH testData/f1",
            "added QmNtocSs7MoDkJMc1RkyisCSKvLadujPsfJfSdJ3e1eA1M testData/f2",
            "added QmSix55yz8CzWXf5ZVM9vgEvijnEeeXiTSarVtsqiiCJss testData/d1",
            "added QmR3jhV4XpxxPjPT3Y8vNnWvWNvakdcT3H6vqpRBsX1MLy testData/d2",
            "added QmfNy183bXiRVyrhyWtq3TwHn79yHEkiAGFr18P7YNzESj testData",
        ]
    );
    let show = |c: &Cid| -> Vec<String> {
        ls(&store, c)
            .unwrap()
            .into_iter()
            .map(|e| match e.kind {
                EntryKind::Directory => format!("{} - {}/", e.cid, e.name),
                _ => format!("{} {} {}", e.cid, e.size, e.name),
            })
            .collect()
    };
    assert_eq!(
        show(&root.cid),
        [
            "QmSix55yz8CzWXf5ZVM9vgEvijnEeeXiTSarVtsqiiCJss - d1/",
            "QmR3jhV4XpxxPjPT3Y8vNnWvWNvakdcT3H6vqpRBsX1MLy - d2/",
            "QmeomffUNfmQy76CQGy9NdmqEnnHU9soCexBnGU3ezPHVH 5 f1",
            "QmNtocSs7MoDkJMc1RkyisCSKvLadujPsfJfSdJ3e1eA1M 5 f2",
        ]
    );
    assert_eq!(
        show(&added[7].cid),
        [
            "QmbQBUSRL9raZtNXfpTDeaxQapibJEG6qEY8WqAN22aUzd 1024 1024",
            "QmaRGe7bVmVaLmxbrMiVNXqW4pRNNp3xq7hFtyRKA3mtJL 6 a",
        ]
    );
}

/// kubo test/sharness/t0045-ls.sh (`test_ls_object`): `ls` of a two-block file lists its
/// blocks, unnamed, with their sizes.
#[test]
fn kubo_vector_ls_of_a_file() {
    let store = MemoryBlockstore::default();
    let data = crate::unixfs::file::gorand::go_random(500_000, 2);
    let root = crate::unixfs::file::import_file(
        &data[..],
        &ImportOptions::default(),
        &StoreSink(&store),
        &|_| {},
    )
    .unwrap();
    let got: Vec<(String, u64, String)> = ls(&store, &root.cid)
        .unwrap()
        .into_iter()
        .map(|e| (e.cid.to_string(), e.size, e.name))
        .collect();
    assert_eq!(
        got,
        [
            (
                "QmPrM8S5T7Q3M8DQvQMS7m41m3Aq4jBjzAzvky5fH3xfr4".to_owned(),
                262_144,
                String::new()
            ),
            (
                "QmdaAntAzQqqVMo4B8V69nkQd5d918YjHXUe2oF6hr72ri".to_owned(),
                237_856,
                String::new()
            ),
        ]
    );
}
