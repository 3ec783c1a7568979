//! End-to-end tests of the `ipfs-kit` binary: each runs the real executable against a fresh
//! repository in a temp dir and checks its output, its exit code and the bytes it gives back.

use crate::common;

use common::Env;
use std::path::Path;
use std::process::Stdio;

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn last_cid(added: &str) -> String {
    added
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn add_then_cat_round_trips_and_prints_kubo_lines() {
    let env = Env::new();
    let data = common::random_bytes(1_000_000, 1);
    let file = env.path("in/data.bin");
    write(&file, &data);
    let out = env.ok(&["add", file.to_str().unwrap()]);
    let line = out.trim();
    assert!(
        line.starts_with("added Qm") && line.ends_with(" data.bin"),
        "{line}"
    );
    let cid = last_cid(&out);
    assert_eq!(env.ok_bytes(&["cat", &cid]), data);
    assert_eq!(
        env.ok_bytes(&["cat", &cid, "--offset", "262140", "--length", "10"]),
        &data[262140..262150]
    );
    // -Q prints only the root and gives the same CID; a second add deduplicates.
    assert_eq!(env.ok(&["add", "-Q", file.to_str().unwrap()]).trim(), cid);
    // --sync (power-loss durability) changes nothing that is printed.
    assert_eq!(
        env.ok(&["--sync", "add", "-Q", file.to_str().unwrap()])
            .trim(),
        cid
    );
    // kubo's well-known CID of the empty file.
    let empty = env.path("in/empty");
    write(&empty, b"");
    assert_eq!(
        env.ok(&["add", "-Q", empty.to_str().unwrap()]).trim(),
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
}

#[test]
fn add_recursive_then_get_and_ls() {
    let env = Env::new();
    let root = env.path("tree");
    write(&root.join("a.txt"), b"hello world\n");
    write(
        &root.join("sub dir/ünïcödé.bin"),
        &common::random_bytes(300_000, 2),
    );
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let out = env.ok(&["add", "-r", root.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().any(|l| l.ends_with(" tree/a.txt")), "{out}");
    assert!(lines.last().unwrap().ends_with(" tree"), "{out}");
    let cid = last_cid(&out);
    // A directory without -r is refused, as in kubo.
    assert!(env.fails(&["add", root.to_str().unwrap()]).contains("-r"));

    let ls = env.ok(&["ls", &cid]);
    assert!(
        ls.contains(" a.txt") && ls.contains(" empty/") && ls.contains(" sub dir/"),
        "{ls}"
    );
    assert_eq!(
        env.ok_bytes(&["cat", &format!("/ipfs/{cid}/a.txt")]),
        b"hello world\n"
    );

    let dest = env.path("out");
    env.ok(&["get", &cid, "-o", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"hello world\n");
    assert_eq!(
        std::fs::read(dest.join("sub dir/ünïcödé.bin")).unwrap(),
        common::random_bytes(300_000, 2)
    );
    assert!(dest.join("empty").is_dir());
}

#[test]
fn only_hash_writes_nothing_and_pin_false_is_collected() {
    let env = Env::new();
    let file = env.path("f");
    write(&file, &common::random_bytes(600_000, 3));
    let cid = env
        .ok(&["add", "-Q", "--only-hash", file.to_str().unwrap()])
        .trim()
        .to_string();
    env.ok(&["repo", "stat"]);
    assert!(env.ok(&["repo", "stat"]).contains("NumObjects: 0"));
    assert!(!env.run(&["cat", &cid]).status.success());

    let cid2 = env
        .ok(&["add", "-Q", "--pin=false", file.to_str().unwrap()])
        .trim()
        .to_string();
    assert_eq!(cid, cid2);
    assert!(!env.ok(&["pin", "ls"]).contains(&cid));
    let gc = env.ok(&["repo", "gc"]);
    assert_eq!(
        gc.lines().filter(|l| l.starts_with("removed ")).count(),
        4,
        "{gc}"
    ); // 3 leaves + root
    assert!(env.ok(&["repo", "stat"]).contains("NumObjects: 0"));
}

#[test]
fn pins_protect_from_gc_until_removed() {
    let env = Env::new();
    let file = env.path("f");
    let data = common::random_bytes(700_000, 4);
    write(&file, &data);
    let cid = env
        .ok(&["add", "-Q", file.to_str().unwrap()])
        .trim()
        .to_string();
    let pins = env.ok(&["pin", "ls", "--type", "recursive"]);
    assert!(pins.contains(&format!("{cid} recursive")), "{pins}");
    assert!(env.ok(&["pin", "ls", "--type", "indirect"]).lines().count() >= 3);
    env.ok(&["repo", "gc"]);
    assert_eq!(env.ok_bytes(&["cat", &cid]), data);
    assert_eq!(
        env.ok(&["pin", "rm", &cid]).trim(),
        format!("unpinned {cid}")
    );
    env.ok(&["repo", "gc"]);
    let err = env.fails(&["cat", &cid]);
    assert!(!err.contains('\n'));
    // Named direct pin.
    let b = env.ok(&["block", "put", file.to_str().unwrap()]);
    let bcid = b.trim().to_string();
    assert!(bcid.starts_with("bafkrei"), "{bcid}"); // 700 KB is under the 2 MiB block limit
    env.ok(&["pin", "add", "--recursive=false", "--name", "mine", &bcid]);
    assert!(env
        .ok(&["pin", "ls"])
        .contains(&format!("{bcid} direct mine")));
}

#[test]
fn block_and_dag_commands() {
    let env = Env::new();
    let f = env.path("blk");
    write(&f, b"some block bytes");
    let cid = env
        .ok(&["block", "put", f.to_str().unwrap()])
        .trim()
        .to_string();
    assert!(cid.starts_with("bafkrei"), "{cid}");
    assert_eq!(env.ok_bytes(&["block", "get", &cid]), b"some block bytes");
    assert_eq!(
        env.ok(&["block", "stat", &cid]),
        format!("Key: {cid}\nSize: 16\n")
    );
    assert_eq!(
        env.ok(&["block", "rm", &cid]).trim(),
        format!("removed {cid}")
    );
    env.fails(&["block", "get", &cid]);
    // A block over 2 MiB is refused.
    let big = env.path("big");
    write(&big, &vec![7u8; 2 * 1024 * 1024 + 1]);
    env.fails(&["block", "put", big.to_str().unwrap()]);

    let j = env.path("node.json");
    write(&j, br#"{"hello":"world","n":[1,2,3]}"#);
    let dcid = env
        .ok(&["dag", "put", j.to_str().unwrap()])
        .trim()
        .to_string();
    assert!(dcid.starts_with("bafyrei"), "{dcid}");
    let got = env.ok(&["dag", "get", &dcid]);
    assert_eq!(got.trim(), r#"{"hello":"world","n":[1,2,3]}"#);
    assert_eq!(env.ok(&["dag", "get", &format!("{dcid}/n/1")]).trim(), "2");
}

#[test]
fn car_export_import_round_trip() {
    let env = Env::new();
    let root = env.path("t");
    write(&root.join("x"), &common::random_bytes(900_000, 5));
    write(&root.join("y/z"), b"zzz");
    let cid = last_cid(&env.ok(&["add", "-r", root.to_str().unwrap()]));
    let car = env.ok_bytes(&["dag", "export", &cid]);
    let car_path = env.path("t.car");
    std::fs::write(&car_path, &car).unwrap();

    let other = Env::new();
    let out = other.ok(&["dag", "import", car_path.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Pinned root\t{cid}\tsuccess"));
    assert_eq!(
        other.ok_bytes(&["cat", &format!("{cid}/x")]),
        common::random_bytes(900_000, 5)
    );
    // Truncated CAR: a typed error, and nothing pinned.
    let third = Env::new();
    let cut = third.path("cut.car");
    std::fs::write(&cut, &car[..car.len() - 100]).unwrap();
    third.fails(&["dag", "import", cut.to_str().unwrap()]);
    assert!(!third.ok(&["pin", "ls"]).contains(&cid));
}

#[test]
fn bad_input_gives_one_line_errors() {
    let env = Env::new();
    assert!(env
        .fails(&["cat", "not-a-cid"])
        .to_lowercase()
        .contains("cid"));
    env.fails(&["add", env.path("missing").to_str().unwrap()]);
    env.fails(&["cat", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQX"]);
    env.fails(&[
        "add",
        "--chunker",
        "size-0",
        env.path("missing").to_str().unwrap(),
    ]);
    env.fails(&["pin", "ls", "--type", "sideways"]);
}

#[test]
fn verify_finds_a_corrupted_block() {
    let env = Env::new();
    let file = env.path("f");
    write(&file, &common::random_bytes(2_000_000, 6));
    let cid = env
        .ok(&["add", "-Q", file.to_str().unwrap()])
        .trim()
        .to_string();
    assert!(env
        .ok(&["repo", "verify"])
        .contains("verified repo integrity"));
    // Flip one byte in the middle of the largest file under blocks/: block data, whatever the layout.
    let mut files = Vec::new();
    let mut stack = vec![env.repo().join("blocks")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p)
            } else {
                files.push((e.metadata().unwrap().len(), p))
            }
        }
    }
    files.sort();
    let (len, victim) = files.last().unwrap().clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[(len / 2) as usize] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let o = env.run(&["repo", "verify"]);
    assert!(!o.status.success(), "verify must fail on a corrupt block");
    // Reading the corrupt file fails with an error instead of returning bad bytes.
    assert!(!env.run(&["cat", &cid]).status.success());
}

#[test]
fn adds_acknowledged_before_kill_9_survive() {
    let env = Env::new();
    let dir = env.path("many");
    // 60 files of 2 MB: the add runs long after the first lines are printed.
    for i in 0..60 {
        write(
            &dir.join(format!("f{i:02}")),
            &common::random_bytes(2_000_000, 100 + i),
        );
    }
    // Add the files one by one in a child; kill -9 it after some have been acknowledged.
    let mut child = env
        .cmd(&["add", "-r", dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < 5 {
        line.clear();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
            break;
        }
        acked.push(line.split_whitespace().nth(1).unwrap().to_string());
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        status.signal(),
        Some(9),
        "the add must be killed mid-run, not finish first"
    );
    assert_eq!(acked.len(), 5);
    // The repository opens (the lock died with the process) and every acknowledged file is whole.
    for cid in &acked {
        env.ok_bytes(&["cat", cid]);
    }
    assert!(env
        .ok(&["repo", "verify"])
        .contains("verified repo integrity"));
}

#[test]
fn refs_and_dag_stat_offline() {
    let env = Env::new();
    let data = common::random_bytes(600_000, 3);
    write(&env.path("in/d/f.bin"), &data);
    write(&env.path("in/d/g.txt"), b"g");
    let out = env.ok(&[
        "add",
        "-r",
        "--cid-version",
        "1",
        env.path("in/d").to_str().unwrap(),
    ]);
    let root = last_cid(&out);
    let direct = env.ok(&["refs", &root]);
    assert_eq!(direct.lines().count(), 2, "{direct}");
    let all = env.ok(&["refs", "-r", &root]);
    assert_eq!(all.lines().count(), 2 + 3, "{all}");
    let edges = env.ok(&["refs", "-e", &root]);
    assert!(edges.starts_with(&format!("{root} -> ")), "{edges}");
    let names = env.ok(&["refs", "--format", "<linkname>", &root]);
    assert_eq!(names, "f.bin\ng.txt\n");
    // Every block: the root (as CIDv1 raw of its multihash), both files, three leaves.
    assert_eq!(env.ok(&["refs", "local"]).lines().count(), 6);
    let stat = env.ok(&["dag", "stat", &root]);
    assert!(stat.contains("Unique Blocks: 6"), "{stat}");
    assert!(stat.contains(&root), "{stat}");
}

#[test]
fn add_wrap_with_directory() {
    let env = Env::new();
    let data = common::random_bytes(300_000, 8);
    write(&env.path("in/data.bin"), &data);
    write(&env.path("in/note.txt"), b"note");
    let (f, n) = (env.path("in/data.bin"), env.path("in/note.txt"));
    let out = env.ok(&["add", "-w", f.to_str().unwrap(), n.to_str().unwrap()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].ends_with(" data.bin") && lines[1].ends_with(" note.txt"),
        "{out}"
    );
    // The wrapper comes last, with an empty name.
    let dir = lines[2].strip_prefix("added ").unwrap().trim().to_owned();
    assert_eq!(env.ok_bytes(&["cat", &format!("{dir}/data.bin")]), data);
    assert_eq!(env.ok(&["cat", &format!("/ipfs/{dir}/note.txt")]), "note");
    // Only the wrapper is pinned (recursively); -Q prints it.
    let pins = env.ok(&["pin", "ls", "--type=recursive"]);
    assert_eq!(pins.lines().count(), 1, "{pins}");
    assert!(pins.starts_with(&dir), "{pins}");
    assert_eq!(
        env.ok(&["add", "-Q", "-w", f.to_str().unwrap(), n.to_str().unwrap()])
            .trim(),
        dir
    );
    // The same name twice cannot be wrapped.
    env.fails(&["add", "-w", f.to_str().unwrap(), f.to_str().unwrap()]);
}

#[test]
fn pin_update_moves_a_recursive_pin() {
    let env = Env::new();
    for (name, data) in [("v1", b"one".as_slice()), ("v2", b"two"), ("v3", b"three")] {
        write(&env.path(&format!("in/{name}")), data);
    }
    let add = |name: &str, pin: &str| {
        let p = env.path(&format!("in/{name}"));
        env.ok(&["add", "-Q", pin, p.to_str().unwrap()])
            .trim()
            .to_owned()
    };
    let v1 = add("v1", "--pin=true");
    let (v2, v3) = (add("v2", "--pin=false"), add("v3", "--pin=false"));
    assert_eq!(
        env.ok(&["pin", "update", &v1, &v2]),
        format!("updated {v1} to {v2}\n")
    );
    let pins = env.ok(&["pin", "ls", "--type=recursive"]);
    assert!(pins.contains(&v2) && !pins.contains(&v1), "{pins}");
    // from must be pinned recursively.
    env.fails(&["pin", "update", &v1, &v3]);
    // --unpin=false keeps both.
    env.ok(&["pin", "update", "--unpin=false", &v2, &v3]);
    let pins = env.ok(&["pin", "ls", "--type=recursive"]);
    assert!(pins.contains(&v2) && pins.contains(&v3), "{pins}");
    // The old root is no longer protected.
    env.ok(&["repo", "gc"]);
    env.fails(&["cat", &v1]);
    assert_eq!(env.ok(&["cat", &v2]), "two");
}
