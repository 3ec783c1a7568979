//! The `ipfs-kit` binary against the references, end to end: `add` gives kubo's and the JS
//! importer's root CIDs for the same flags, `dag export` writes CARs `@ipld/car` verifies, and
//! `dag import` of a JS-written CAR serves the original bytes back through `cat`.

use std::path::Path;

use ipfs_kit_tests::fixtures::{self, Fixture};
use ipfs_kit_tests::interop::Interop;
use ipfs_kit_tests::{cli, compare_table};

fn inputs(dir: &Path) -> Vec<Fixture> {
    let mut v: Vec<Fixture> = fixtures::boundary_files(dir)
        .unwrap()
        .into_iter()
        .filter(|f| ["file-0", "file-chunk+1", "file-174chunks+1"].contains(&f.name.as_str()))
        .collect();
    v.push(fixtures::tree(dir, "tree", true).unwrap());
    v.push(fixtures::tree_with_hidden(dir, "tree-hidden").unwrap());
    v.push(fixtures::big_dir(dir, "hamt-5000").unwrap());
    v
}

#[test]
fn cli_add_matches_kubo_and_js() {
    let Some(interop) = Interop::from_env("cli_interop::cli_add_matches_kubo_and_js") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let all = inputs(tmp.path());
    let repo = tmp.path().join("repo");
    let paths: Vec<&Path> = all.iter().map(|f| f.path.as_path()).collect();
    let mut bad = Vec::new();

    // kubo's AddFile adds dot-files, so the CLI gets -H for the tree that has them.
    let kubo = interop.kubo_add_many(&paths).unwrap();
    let rows: Vec<_> = all
        .iter()
        .zip(kubo)
        .map(|(f, k)| {
            let flags: &[&str] = if f.has_hidden { &["-H"] } else { &[] };
            (f.name.clone(), k, cli::add_root(&repo, flags, &f.path))
        })
        .collect();
    bad.extend(compare_table(
        "kubo v0.22 vs `ipfs-kit add [-r] [-H]`",
        &rows,
    ));

    let variants: [(&str, &[&str], &[&str]); 2] = [
        ("--cid-version=1", &[], &["--cid-version=1"]),
        (
            "--cid-version=1 --trickle",
            &["--layout", "trickle", "--reduce-single-leaf", "false"],
            &["--cid-version=1", "--trickle"],
        ),
    ];
    for (name, js_flags, our_flags) in variants {
        let js = interop.js_import(js_flags, &paths).unwrap();
        let rows: Vec<_> = all
            .iter()
            .zip(js)
            .map(|(f, j)| (f.name.clone(), j, cli::add_root(&repo, our_flags, &f.path)))
            .collect();
        bad.extend(compare_table(
            &format!("JS importer vs `ipfs-kit add {name}`"),
            &rows,
        ));
    }
    assert!(
        bad.is_empty(),
        "{} CLI roots differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn cli_dag_export_and_import_with_ipld_car() {
    let Some(interop) = Interop::from_env("cli_interop::cli_dag_export_and_import_with_ipld_car")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let big = fixtures::sized_file(tmp.path(), "big", 11, 3 * 262_144 * 174 / 2 + 7).unwrap();
    let tree = fixtures::tree(tmp.path(), "tree", true).unwrap();

    // ipfs-kit dag export -> @ipld/car verifies every block.
    let repo = tmp.path().join("repo");
    for f in [&big, &tree] {
        let root = cli::add_root(&repo, &[], &f.path).unwrap();
        let out = cli::run(&repo, &["dag", "export", &root]).unwrap();
        let car = tmp.path().join(format!("ours-{}.car", f.name));
        std::fs::write(&car, &out.stdout).unwrap();
        let l = interop.car_read(&car).unwrap();
        assert_eq!(l.roots, vec![root.clone()], "{}", f.name);
        assert_eq!(l.verified as usize, l.blocks.len(), "{}", f.name);
        assert_eq!(
            l.blocks.first().map(|b| b.0.as_str()),
            Some(root.as_str()),
            "{}",
            f.name
        );
    }

    // @ipld/car-written CAR -> ipfs-kit dag import -> cat gives the original bytes.
    let repo2 = tmp.path().join("repo2");
    let car = tmp.path().join("js-big.car");
    let root = interop.car_write(&car, &[], &big.path).unwrap();
    cli::run(&repo2, &["dag", "import", car.to_str().unwrap()]).unwrap();
    let cat = cli::run(&repo2, &["cat", &root]).unwrap();
    assert!(
        cat.stdout == std::fs::read(&big.path).unwrap(),
        "cat after dag import differs"
    );

    let car = tmp.path().join("js-tree.car");
    let root = interop.car_write(&car, &[], &tree.path).unwrap();
    cli::run(&repo2, &["dag", "import", car.to_str().unwrap()]).unwrap();
    let inner = format!("{root}/ünïcødé 名前/файл.bin");
    let cat = cli::run(&repo2, &["cat", &inner]).unwrap();
    let want = std::fs::read(tree.path.join("ünïcødé 名前/файл.bin")).unwrap();
    assert!(cat.stdout == want, "cat {inner} after dag import differs");
    cli::run(&repo2, &["repo", "verify"]).unwrap();
}
