//! A real S3 server for the tier tests: moto's server mode (`moto_server`, installed by
//! `.ci/run` into `.interop/`, path in `IPFS_KIT_MOTO_SERVER`), started on a free loopback port
//! per test and killed when the test ends. Without the variable a test is skipped loudly on a
//! dev machine and fails under CI (`CI` set), as the kubo interop tests do.

#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipfs_kit_tiers::tier::s3::{S3Config, S3Tier};
use ipfs_kit_tiers::tier::CancellationToken;

/// How long moto may take to start listening.
pub const MOTO_START_TIMEOUT_MS: u64 = 30_000;

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts moto, or returns `None` after printing a SKIP line; panics under CI when the
    /// server is not installed.
    pub fn start(test: &str) -> Option<Moto> {
        let bin = match std::env::var_os("IPFS_KIT_MOTO_SERVER").map(PathBuf::from) {
            Some(p) if p.exists() => p,
            other => {
                let why = match other {
                    Some(p) => format!("IPFS_KIT_MOTO_SERVER={} does not exist", p.display()),
                    None => "env IPFS_KIT_MOTO_SERVER is not set".to_string(),
                };
                if std::env::var_os("CI").is_some() {
                    panic!("{test}: S3 server missing under CI: {why} (run .ci/run)");
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIP {test}: {why}\n*** to test against a real S3 server: eval \"$(.ci/run --install-only)\"\n"
                );
                return None;
            }
        };
        let port = free_port();
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: starting {}: {e}", bin.display()));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_millis(MOTO_START_TIMEOUT_MS);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{test}: moto_server exited early: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{test}: moto_server did not listen on {addr} within {MOTO_START_TIMEOUT_MS} ms");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Moto {
            child,
            endpoint: format!("http://{addr}"),
        })
    }

    /// A config for `bucket` on this server (static test credentials, path style).
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
        }
    }

    /// Connects and creates the bucket.
    pub async fn tier(&self, bucket: &str, prefix: &str) -> S3Tier {
        let tier = S3Tier::connect(&self.config(bucket, prefix))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        tier.ensure_bucket(&CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
        tier
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
}

/// A block of `len` pseudo-random bytes (seeded), with its CIDv1 raw.
pub fn block(seed: u64, len: usize) -> ipfs_kit_blockstore::Block {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mh = ipfs_kit_blockstore::hash::HashFn::Sha2_256
        .digest(&data)
        .unwrap_or_else(|e| panic!("digest: {e}"));
    let cid = cid::Cid::new_v1(ipfs_kit_blockstore::hash::RAW_CODEC, mh);
    ipfs_kit_blockstore::Block::new(cid, data.into()).unwrap_or_else(|e| panic!("block: {e}"))
}
