//! `ipfs-kit tier` end to end against a real S3 server (moto on loopback, installed by
//! `.ci/run`, path in `IPFS_KIT_MOTO_SERVER`): a file's DAG moved to S3 is still `cat`-able,
//! blocks come back verified and promoted, and `tier ls|stat` say where blocks live.
//! Skipped loudly without the server; fails under CI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Moto {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(test: &str) -> Option<Moto> {
    let bin = match std::env::var_os("IPFS_KIT_MOTO_SERVER") {
        Some(p) if std::path::Path::new(&p).exists() => p,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: IPFS_KIT_MOTO_SERVER missing under CI (run .ci/run)");
            }
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIP {test}: env IPFS_KIT_MOTO_SERVER is not set\n*** eval \"$(.ci/run --install-only)\"\n"
            );
            return None;
        }
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut moto = Moto { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            moto.child.try_wait().unwrap().is_none(),
            "moto_server exited"
        );
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(moto)
}

/// Creates a bucket with a plain HTTP PUT (moto does not check signatures).
fn create_bucket(addr: SocketAddr, bucket: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

const AWS_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
    (
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/aws-credentials",
    ),
];

#[test]
fn a_dag_moved_to_s3_still_cats_and_comes_back() {
    let Some(moto) = start_moto("a_dag_moved_to_s3_still_cats_and_comes_back") else {
        return;
    };
    create_bucket(moto.addr, "kit");
    let env = common::Env::new();
    let run = |args: &[&str]| env.ok_with(args, &AWS_ENV);
    run(&["init"]);
    let mut cfg = std::fs::OpenOptions::new()
        .append(true)
        .open(env.config_file())
        .unwrap();
    write!(
        cfg,
        "\n[tiers.s3]\nbucket = \"kit\"\nprefix = \"blocks/\"\nendpoint = \"http://{}\"\nregion = \"us-east-1\"\npath_style = true\n",
        moto.addr
    )
    .unwrap();
    drop(cfg);

    // 3 MiB and change: 13 leaves under one root, CIDv0 dag-pb leaves (kubo's defaults).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 777u32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = env.path("f.bin");
    std::fs::write(&file, &data).unwrap();
    let root = run(&["add", "-Q", file.to_str().unwrap()])
        .trim()
        .to_string();
    let ls = run(&["tier", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("local") && l.contains(" 14 ")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("s3") && l.contains(" 0 ") && l.contains("s3://kit/blocks/")),
        "{ls}"
    );

    let out = run(&["tier", "move", &root, "s3"]);
    assert!(out.contains("moved 14 of 14 blocks"), "{out}");
    assert_eq!(run(&["tier", "stat", &root]).trim(), format!("{root} s3"));
    let ls = run(&["tier", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("local") && l.contains(" 0 ")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("s3") && l.contains(" 14 ")),
        "{ls}"
    );

    // cat just works, and what it read is promoted back.
    assert_eq!(env.ok_bytes_with(&["cat", &root], &AWS_ENV), data);
    assert_eq!(
        run(&["tier", "stat", &root]).trim(),
        format!("{root} local s3")
    );

    // A CIDv1 raw-leaf DAG, moved out and fetched back in parallel by `tier move ... local`.
    let root1 = run(&["add", "-Q", "--cid-version=1", file.to_str().unwrap()])
        .trim()
        .to_string();
    run(&["tier", "move", &root1, "s3"]);
    assert_eq!(run(&["tier", "stat", &root1]).trim(), format!("{root1} s3"));
    let out = run(&["tier", "move", &root1, "local"]);
    assert!(out.contains("moved 14 of 14 blocks"), "{out}");
    assert_eq!(
        run(&["tier", "stat", &root1]).trim(),
        format!("{root1} local s3")
    );
    assert_eq!(env.ok_bytes_with(&["cat", &root1], &AWS_ENV), data);

    // Slots and unknown tiers are refused with a reason.
    let o = env.run_with(&["tier", "move", &root, "filecoin"], &AWS_ENV);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not configured"));
    let o = env.run_with(&["tier", "move", &root, "tape"], &AWS_ENV);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown tier"));
}

#[test]
fn without_a_tier_ls_shows_the_local_store_only() {
    let env = common::Env::new();
    env.ok(&["init"]);
    let ls = env.ok(&["tier", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("s3") && l.contains("not configured")),
        "{ls}"
    );
    assert!(env
        .fails(&["tier", "move", "bafkqaaa", "s3"])
        .contains("no storage tier"));
}
