//! Promoting a file back from S3: a 100 MiB file is added to a fresh repository with an S3 tier
//! (moto on loopback, or any endpoint), moved to S3 with `tier move`, then promoted back
//! (`tier move <root> local`), several times; MB/s of file bytes promoted. Target: > 200 MB/s.
//!
//! ```sh
//! eval "$(bash .ci/run --install-only)"       # IPFS_KIT_MOTO_SERVER
//! cargo run --release -p ipfs-kit-benches --bin s3_promote_bench -- --mib 100
//! # Garage (a real S3 store; moto caps at ~200 requests/s):
//! eval "$(bash benches/garage.sh start)"
//! cargo run --release -p ipfs-kit-benches --bin s3_promote_bench -- --endpoint "$GARAGE_ENDPOINT" --bucket "$GARAGE_BUCKET" --region garage
//! ```
//!
//! The promotion is [`ipfs_kit::repo::Repo::tier_move`] to local, i.e. the tiered store's
//! pipelined `promote_dag`: up to 32 GETs in flight, each body hash-checked by the tier and
//! again by the tiered store, written to the pack store in batches of 64. The first promotion
//! is checked byte for byte against the file (`cat` of the DAG from the local store only).

use anyhow::{Context, Result};
use clap::Parser;
use ipfs_kit::repo::Repo;
use ipfs_kit::unixfs::{dir::import_path, ImportOptions};
use ipfs_kit_tiers::tier::TierKind;
use rand::{RngCore, SeedableRng};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// File size in MiB.
    #[arg(long, default_value_t = 100)]
    mib: usize,
    /// Promotions measured.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// An S3 endpoint to use instead of starting moto (`$IPFS_KIT_MOTO_SERVER`); its bucket
    /// must exist and `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` must be set.
    #[arg(long)]
    endpoint: Option<String>,
    #[arg(long, default_value = "promote-bench")]
    bucket: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Add with CIDv1 (raw leaves) instead of kubo's CIDv0 defaults.
    #[arg(long)]
    cid_v1: bool,
}

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Result<(Moto, String)> {
    let bin = std::env::var_os("IPFS_KIT_MOTO_SERVER").context(
        "set IPFS_KIT_MOTO_SERVER (eval \"$(bash .ci/run --install-only)\") or --endpoint",
    )?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let moto = Moto(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((moto, format!("http://{addr}")))
}

/// Creates the bucket with a plain unsigned PUT (moto and most dev servers accept one); an
/// existing bucket is fine.
fn create_bucket(endpoint: &str, bucket: &str) -> Result<()> {
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = TcpStream::connect(&host).with_context(|| format!("connecting to {host}"))?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut s, &mut reply)?;
    anyhow::ensure!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.1 409"),
        "creating the bucket: {reply}"
    );
    Ok(())
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() -> Result<()> {
    let a = Args::parse();
    // Credentials for the AWS default chain (moto accepts any), set before any thread starts.
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
    let (_moto, endpoint) = match &a.endpoint {
        Some(e) => (None, e.clone()),
        None => {
            let (m, e) = start_moto()?;
            (Some(m), e)
        }
    };
    let scratch = tempfile::tempdir()?;
    let repo_path = scratch.path().join("repo");
    drop(Repo::init(&repo_path)?);
    let mut cfg = std::fs::OpenOptions::new()
        .append(true)
        .open(repo_path.join("config.toml"))?;
    write!(
        cfg,
        "\n[tiers]\nplacement_interval_secs = 0\n\n[tiers.s3]\nbucket = \"{}\"\nprefix = \"blocks/\"\nendpoint = \"{endpoint}\"\nregion = \"{}\"\npath_style = true\n",
        a.bucket, a.region
    )?;
    drop(cfg);
    let repo = Repo::open(&repo_path)?;
    let tiered = repo.tiered().context("the S3 tier did not open")?;
    if a.endpoint.is_none() {
        // With `--endpoint` the bucket must exist (benches/garage.sh creates it, signed).
        create_bucket(&endpoint, &a.bucket)?;
    }
    let bytes = (a.mib * 1024 * 1024) as u64;
    let file = scratch.path().join("file.bin");
    {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut buf = vec![0u8; a.mib * 1024 * 1024];
        rng.fill_bytes(&mut buf);
        std::fs::write(&file, &buf)?;
    }
    let mut opts = ImportOptions::default();
    if a.cid_v1 {
        opts.cid_version = Some(cid::Version::V1);
    }
    let session = repo.begin_write();
    let root = import_path(&file, &opts, &session, &mut |_| {}, &|_| {})?.cid;
    session.pin_imported_root(&root, None)?;
    drop(session);
    println!(
        "added {} MiB as {root} ({} blocks); S3 at {endpoint}",
        a.mib,
        repo.blocks().stat()?.blocks
    );

    let mut rates = Vec::new();
    for run in 0..a.runs {
        let t = Instant::now();
        let down = repo.tier_move(&root, TierKind::S3)?;
        let demote = t.elapsed();
        anyhow::ensure!(
            tiered.local().stat()?.blocks == 0,
            "blocks left locally after the demotion"
        );
        let t = Instant::now();
        let up = repo.tier_move(&root, TierKind::Local)?;
        let promote = t.elapsed();
        anyhow::ensure!(
            up.blocks == down.blocks && up.moved == up.blocks,
            "{up:?} vs {down:?}"
        );
        let rate = mbps(bytes, promote);
        rates.push(rate);
        println!(
            "run {run}: demote {} blocks in {:.2} s ({:.0} MB/s{}), promote {} blocks ({} B) in {:.2} s: {rate:.0} MB/s",
            down.blocks,
            demote.as_secs_f64(),
            mbps(bytes, demote),
            if run == 0 { ", uploads" } else { ", already in S3: local deletes" },
            up.moved,
            up.bytes,
            promote.as_secs_f64(),
        );
        if run == 0 {
            // Byte for byte, from the local store alone.
            let local = tiered.local().clone();
            let mut out = Vec::with_capacity(bytes as usize);
            ipfs_kit::unixfs::export::cat(local.as_ref(), &root, 0, None, &mut out)?;
            anyhow::ensure!(out == std::fs::read(&file)?, "promoted bytes differ");
        }
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "promote {} MiB from S3: median {:.0} MB/s (best {:.0}, worst {:.0}) over {} runs",
        a.mib,
        rates[rates.len() / 2],
        rates[rates.len() - 1],
        rates[0],
        rates.len()
    );
    Ok(())
}
