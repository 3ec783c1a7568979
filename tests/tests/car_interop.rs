//! CAR files both ways against `@ipld/car`: what ipfs-kit exports, the JS reader parses and
//! verifies block by block; what the JS writer makes (from the JS importer's blocks), ipfs-kit
//! imports, verifies, and can export again.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use cid::{Cid, Version};
use ipfs_kit::car::{export_car, import_car};
use ipfs_kit::unixfs::{ImportOptions, StoreSink};
use ipfs_kit_blockstore::{Blockstore, MemoryBlockstore};
use ipfs_kit_tests::fixtures::{self, Fixture};
use ipfs_kit_tests::interop::{CarListing, Interop};
use ipfs_kit_tests::ours;

fn inputs(dir: &Path) -> Vec<Fixture> {
    let mut v: Vec<Fixture> = fixtures::boundary_files(dir)
        .unwrap()
        .into_iter()
        .filter(|f| ["file-1", "file-174chunks+1"].contains(&f.name.as_str()))
        .collect();
    v.push(fixtures::tree(dir, "tree", true).unwrap());
    v.push(fixtures::big_dir(dir, "hamt-5000").unwrap());
    v
}

/// Multihashes of the blocks a store holds (stores key by multihash).
fn store_multihashes(store: &MemoryBlockstore) -> BTreeSet<Vec<u8>> {
    store
        .all_cids()
        .unwrap()
        .iter()
        .map(|c| c.hash().to_bytes())
        .collect()
}

fn listing_multihashes(l: &CarListing) -> BTreeSet<Vec<u8>> {
    l.blocks
        .iter()
        .map(|(c, _)| Cid::try_from(c.as_str()).unwrap().hash().to_bytes())
        .collect()
}

/// Asserts two multihash sets are equal, describing the difference compactly when not.
fn assert_same_blocks(left: &BTreeSet<Vec<u8>>, right: &BTreeSet<Vec<u8>>, what: &str) {
    if left == right {
        return;
    }
    let show = |s: Vec<&Vec<u8>>| -> Vec<String> {
        s.into_iter()
            .take(5)
            .map(|mh| match cid::multihash::Multihash::<64>::from_bytes(mh) {
                Ok(mh) => Cid::new_v1(0x55, mh).to_string(),
                Err(_) => format!("{mh:02x?}"),
            })
            .collect()
    };
    panic!(
        "{what}: block sets differ ({} vs {} blocks); only left: {:?}; only right: {:?}",
        left.len(),
        right.len(),
        show(left.difference(right).collect()),
        show(right.difference(left).collect()),
    );
}

#[test]
fn our_car_export_reads_in_ipld_car() {
    let Some(interop) = Interop::from_env("car_interop::our_car_export_reads_in_ipld_car") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let all = inputs(tmp.path());
    let v1 = ImportOptions {
        cid_version: Some(Version::V1),
        ..ImportOptions::default()
    };
    for opts in [ImportOptions::default(), v1] {
        for f in &all {
            let what = format!("{} (CIDv{})", f.name, opts.version() as u64);
            let store = MemoryBlockstore::new();
            let root = ours::import_into(&f.path, &opts, &StoreSink(&store))
                .unwrap()
                .cid;
            let car = tmp
                .path()
                .join(format!("{}-v{}.car", f.name, opts.version() as u64));
            let stats = {
                let mut out = BufWriter::new(File::create(&car).unwrap());
                export_car(&store, &[root], &mut out).unwrap()
            };
            let l = interop.car_read(&car).unwrap();
            println!(
                "{what}: {} blocks, {} bytes -> @ipld/car: v{} roots {:?}",
                stats.blocks, stats.car_bytes, l.version, l.roots
            );
            assert_eq!(l.version, 1, "{what}");
            assert_eq!(l.roots, vec![root.to_string()], "{what}");
            let first = l.blocks.first().map(|b| b.0.clone());
            assert_eq!(first, Some(root.to_string()), "{what}: root block first");
            assert_eq!(l.unverified, 0, "{what}");
            assert_eq!(
                l.verified as usize,
                l.blocks.len(),
                "{what}: every block verified"
            );
            assert_eq!(l.blocks.len() as u64, stats.blocks, "{what}");
            // Exactly the blocks the import made, each once.
            let listed = listing_multihashes(&l);
            assert_eq!(
                listed.len(),
                l.blocks.len(),
                "{what}: a block written twice"
            );
            assert_same_blocks(&listed, &store_multihashes(&store), &what);
        }
    }
}

#[test]
fn ipld_car_written_car_imports_into_ipfs_kit() {
    let Some(interop) =
        Interop::from_env("car_interop::ipld_car_written_car_imports_into_ipfs_kit")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let all = inputs(tmp.path());
    let variants: [(&[&str], ImportOptions); 2] = [
        (
            &[],
            ImportOptions {
                cid_version: Some(Version::V1),
                ..ImportOptions::default()
            },
        ),
        (
            &["--cid-version", "0", "--raw-leaves", "false"],
            ImportOptions::default(),
        ),
    ];
    for (flags, opts) in &variants {
        for f in &all {
            let what = format!("{} (CIDv{})", f.name, opts.version() as u64);
            let car = tmp
                .path()
                .join(format!("js-{}-v{}.car", f.name, opts.version() as u64));
            let their_root = interop.car_write(&car, flags, &f.path).unwrap();
            let listing = interop.car_read(&car).unwrap();

            let store = MemoryBlockstore::new();
            let mut input = BufReader::new(File::open(&car).unwrap());
            let imported = import_car(&StoreSink(&store), &mut input).unwrap();
            let roots: Vec<String> = imported.roots.iter().map(Cid::to_string).collect();
            assert_eq!(roots, vec![their_root.clone()], "{what}");
            assert_eq!(imported.blocks as usize, listing.blocks.len(), "{what}");
            assert_same_blocks(
                &store_multihashes(&store),
                &listing_multihashes(&listing),
                &what,
            );
            for (c, size) in &listing.blocks {
                let cid = Cid::try_from(c.as_str()).unwrap();
                let data = store.get(&cid).unwrap();
                assert_eq!(
                    data.map(|d| d.len() as u64),
                    Some(*size),
                    "{what}: block {c}"
                );
            }

            // Our importer makes the same root from the same input, and our export of their
            // blocks is again a valid CAR with every block of the DAG.
            let ours = ours::root_string(&f.path, opts);
            assert_eq!(ours.as_deref(), Ok(their_root.as_str()), "{what}");
            let again = tmp.path().join(format!("again-{}.car", f.name));
            let root = Cid::try_from(their_root.as_str()).unwrap();
            {
                let mut out = BufWriter::new(File::create(&again).unwrap());
                export_car(&store, &[root], &mut out).unwrap();
            }
            let l2 = interop.car_read(&again).unwrap();
            // The JS importer also writes blocks no link reaches (the empty directory it starts
            // a sharded directory from), so our DAG-walk export may hold fewer blocks — never
            // other ones.
            let (ours_set, theirs_set) = (listing_multihashes(&l2), listing_multihashes(&listing));
            let extra: BTreeSet<_> = ours_set.difference(&theirs_set).cloned().collect();
            assert_same_blocks(&extra, &BTreeSet::new(), &format!("{what}: re-export"));
            let first = l2.blocks.first().map(|b| b.0.as_str());
            assert_eq!(first, Some(their_root.as_str()), "{what}: root block first");
            println!(
                "{what}: JS CAR with {} blocks imported; root {their_root}",
                l2.blocks.len()
            );
        }
    }
}

#[test]
fn corrupted_js_car_is_refused() {
    let Some(interop) = Interop::from_env("car_interop::corrupted_js_car_is_refused") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let f = fixtures::sized_file(tmp.path(), "file", 5, 600_000).unwrap();
    let car = tmp.path().join("js.car");
    interop.car_write(&car, &[], &f.path).unwrap();
    let mut bytes = std::fs::read(&car).unwrap();
    // The first leaf's data sits right after the header; flip a byte in the middle of the file.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let store = MemoryBlockstore::new();
    let res = import_car(&StoreSink(&store), &mut bytes.as_slice());
    assert!(
        res.is_err(),
        "a CAR with a corrupted block imported: {res:?}"
    );
}
