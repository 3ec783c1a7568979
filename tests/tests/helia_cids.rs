//! ipfs-kit's importer against the JS importer Helia uses (`ipfs-unixfs-importer`), for CIDv1
//! (raw leaves implied, as `ipfs add --cid-version=1`) and for the layout / chunker / leaf
//! variants: the same inputs must give the same root CIDs.
//!
//! kubo's trickle layout always makes a root node, even over a single leaf (boxo
//! `ipld/unixfs/importer/trickle`, `Layout`), where the JS importer by default reduces a one-leaf
//! file to the leaf; the trickle variants therefore run the JS importer with
//! `reduceSingleLeafToSelf: false` (its documented way to reproduce kubo's trickle DAGs).

use std::path::Path;

use cid::Version;
use ipfs_kit::unixfs::{ChunkerSpec, ImportOptions, Layout};
use ipfs_kit_tests::fixtures::{self, Fixture};
use ipfs_kit_tests::interop::Interop;
use ipfs_kit_tests::{compare_table, ours};

struct Variant {
    name: &'static str,
    js_flags: Vec<&'static str>,
    opts: ImportOptions,
    fixtures: Vec<Fixture>,
}

fn v1() -> ImportOptions {
    ImportOptions {
        cid_version: Some(Version::V1),
        ..ImportOptions::default()
    }
}

#[test]
fn root_cids_match_js_importer() {
    let Some(interop) = Interop::from_env("helia_cids::root_cids_match_js_importer") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let files = fixtures::boundary_files(dir).unwrap();
    let pick = |names: &[&str]| -> Vec<Fixture> {
        files
            .iter()
            .filter(|f| names.contains(&f.name.as_str()))
            .cloned()
            .collect()
    };
    let tree = fixtures::tree(dir, "tree", true).unwrap();
    let hidden = fixtures::tree_with_hidden(dir, "tree-hidden").unwrap();
    let hamt = fixtures::big_dir(dir, "hamt-5000").unwrap();
    let empty = fixtures::empty_dir(dir, "empty-dir").unwrap();
    // 1024 leaves of 4 KiB: deep enough for several trickle layers and balanced levels.
    let many_leaves = fixtures::sized_file(dir, "file-4MiB", 77, 4 << 20).unwrap();
    let mid = fixtures::sized_file(dir, "file-3MiB+5", 78, 3 * (1 << 20) + 5).unwrap();

    let mut default_set = files.clone();
    default_set.extend([tree.clone(), hidden.clone(), hamt, empty]);

    let variants = vec![
        Variant {
            name: "cidv1 (raw leaves, 256 KiB, balanced 174)",
            js_flags: vec![],
            opts: v1(),
            fixtures: default_set,
        },
        Variant {
            name: "cidv1 --hidden",
            js_flags: vec!["--hidden"],
            opts: ImportOptions {
                hidden: true,
                ..v1()
            },
            fixtures: vec![hidden],
        },
        Variant {
            name: "cidv1 --trickle",
            js_flags: vec!["--layout", "trickle", "--reduce-single-leaf", "false"],
            opts: ImportOptions {
                layout: Layout::Trickle,
                ..v1()
            },
            fixtures: {
                let mut v = pick(&[
                    "file-0",
                    "file-1",
                    "file-chunk",
                    "file-chunk+1",
                    "file-174chunks+1",
                ]);
                v.extend([mid.clone(), tree.clone()]);
                v
            },
        },
        Variant {
            name: "cidv1 --trickle --chunker=size-4096",
            js_flags: vec![
                "--layout",
                "trickle",
                "--reduce-single-leaf",
                "false",
                "--chunk-size",
                "4096",
            ],
            opts: ImportOptions {
                layout: Layout::Trickle,
                chunker: ChunkerSpec::Size(4096),
                ..v1()
            },
            fixtures: vec![many_leaves.clone()],
        },
        Variant {
            name: "cidv1 --chunker=size-4096 (balanced, 3 levels)",
            js_flags: vec!["--chunk-size", "4096"],
            opts: ImportOptions {
                chunker: ChunkerSpec::Size(4096),
                ..v1()
            },
            fixtures: vec![many_leaves],
        },
        Variant {
            name: "cidv1 --chunker=size-1048576",
            js_flags: vec!["--chunk-size", "1048576"],
            opts: ImportOptions {
                chunker: ChunkerSpec::Size(1 << 20),
                ..v1()
            },
            fixtures: {
                let mut v = pick(&["file-chunk+1", "file-174chunks+1"]);
                v.extend([mid.clone(), tree.clone()]);
                v
            },
        },
        Variant {
            name: "cidv1 --raw-leaves=false",
            js_flags: vec!["--raw-leaves", "false"],
            opts: ImportOptions {
                raw_leaves: Some(false),
                ..v1()
            },
            fixtures: {
                let mut v = pick(&["file-0", "file-1", "file-chunk", "file-chunk+1"]);
                v.push(tree.clone());
                v
            },
        },
        Variant {
            name: "cidv0 (JS importer with kubo's defaults)",
            js_flags: vec!["--cid-version", "0", "--raw-leaves", "false"],
            opts: ImportOptions::default(),
            fixtures: {
                let mut v = pick(&["file-0", "file-chunk+1", "file-174chunks+1"]);
                v.push(tree);
                v
            },
        },
    ];

    let mut bad = Vec::new();
    for v in &variants {
        let paths: Vec<&Path> = v.fixtures.iter().map(|f| f.path.as_path()).collect();
        let theirs = interop.js_import(&v.js_flags, &paths).unwrap();
        let rows: Vec<_> = v
            .fixtures
            .iter()
            .zip(theirs)
            .map(|(f, js)| (f.name.clone(), js, ours::root_string(&f.path, &v.opts)))
            .collect();
        bad.extend(
            compare_table(
                &format!("ipfs-unixfs-importer vs ipfs-kit: {}", v.name),
                &rows,
            )
            .into_iter()
            .map(|b| format!("[{}] {b}", v.name)),
        );
    }
    assert!(
        bad.is_empty(),
        "{} root CIDs differ from the JS importer:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
