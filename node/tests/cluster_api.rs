//! The cluster REST API of real `ipfs-kit daemon` processes (a master and a worker), driven
//! with reqwest: ipfs-cluster's JSON shapes for every endpoint, its error answers, the worker's
//! refusal to pin, bodies at limit and limit + 1 (413), the token required off loopback (401
//! without it), and the `ipfs-kit cluster` CLI through the daemon.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::Env;
use reqwest::blocking::Client;
use serde_json::Value;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "cluster-token-0123456789";

/// A running daemon with its cluster API too (see [`common::Daemon`]).
pub struct ClusterDaemon {
    daemon: common::Daemon,
    /// `http://ip:port` of the cluster API.
    pub cluster: String,
}

impl std::ops::Deref for ClusterDaemon {
    type Target = common::Daemon;
    fn deref(&self) -> &common::Daemon {
        &self.daemon
    }
}

impl ClusterDaemon {
    /// Starts `ipfs-kit daemon` with a cluster API on `env`'s repository; `Err(stderr)` when
    /// it exits first.
    pub fn try_start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Result<Self, String> {
        let mut args: Vec<&str> = Vec::new();
        if !extra.contains(&"--cluster-api") {
            args.extend_from_slice(&["--cluster-api", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let daemon = common::Daemon::try_start(env, &args, vars)?;
        let cluster = daemon.cluster.clone().expect("no cluster API line");
        Ok(ClusterDaemon { daemon, cluster })
    }

    pub fn start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Self {
        Self::try_start(env, extra, vars).unwrap_or_else(|e| panic!("daemon failed: {e}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cluster)
    }

    /// Adds `data` through the RPC API; returns its CID (pinned locally on this node).
    pub fn add(&self, c: &Client, data: Vec<u8>) -> String {
        let form = reqwest::blocking::multipart::Form::new().part(
            "file",
            reqwest::blocking::multipart::Part::bytes(data).file_name("f"),
        );
        let r = c
            .post(format!("{}/api/v0/add?cid-version=1", self.api))
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = serde_json::from_str(r.text().unwrap().lines().last().unwrap()).unwrap();
        v["Hash"].as_str().unwrap().to_owned()
    }

    pub fn kill(&mut self) {
        let _ = self.daemon.child.kill();
        let _ = self.daemon.child.wait();
    }
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Newline-delimited JSON values (none for 204).
pub fn lines(r: reqwest::blocking::Response) -> Vec<Value> {
    if r.status() == 204 {
        return Vec::new();
    }
    assert_eq!(r.status(), 200);
    r.text()
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// ipfs-cluster's error body with `status`; returns its message.
pub fn cluster_error(r: reqwest::blocking::Response, status: u16) -> String {
    assert_eq!(r.status(), status);
    let v: Value = r.json().unwrap();
    assert_eq!(v["code"], status, "{v}");
    v["message"].as_str().unwrap().to_owned()
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A repository initialised with `role`.
pub fn env_with_role(role: &str) -> Env {
    let env = Env::new();
    env.ok(&["init", "--role", role]);
    env
}

#[test]
fn rest_api_shapes_errors_limits_and_cli() {
    let c = client();
    let m_env = env_with_role("master");
    let master = ClusterDaemon::start(&m_env, &[], &[]);
    let w_env = env_with_role("worker");
    let worker = ClusterDaemon::start(
        &w_env,
        &["--bootstrap", &master.swarm],
        &[("IPFS_KIT_CLUSTER_TRUSTED_PEERS", &master.peer_id)],
    );

    // GET /version, GET /id.
    let v: Value = c
        .get(master.url("/version"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let id: Value = c.get(master.url("/id")).send().unwrap().json().unwrap();
    assert_eq!(id["id"], master.peer_id.as_str());
    assert_eq!(id["ipfs"]["id"], master.peer_id.as_str());
    assert_eq!(id["error"], "");
    for key in ["addresses", "cluster_peers", "cluster_peers_addresses"] {
        assert!(id[key].is_array(), "{key}: {id}");
    }
    assert!(id["rpc_protocol_version"].is_string());
    assert!(id["addresses"][0]
        .as_str()
        .unwrap()
        .ends_with(&format!("/p2p/{}", master.peer_id)));

    // GET /peers: both peers once the worker's metric reached the master.
    let peers = wait_for(Duration::from_secs(20), "the worker in /peers", || {
        let p = lines(c.get(master.url("/peers")).send().unwrap());
        p.iter()
            .any(|x| x["id"] == worker.peer_id.as_str())
            .then_some(p)
    });
    assert!(peers
        .iter()
        .all(|p| p["id"].is_string() && p["ipfs"].is_object()));

    // POST /pins/{cid} with ipfs-cluster's options → the Pin written.
    let cid = master.add(&c, b"cluster api test content".to_vec());
    let r = c
        .post(master.url(&format!(
            "/pins/{cid}?name=backup&mode=recursive&replication-min=1&replication-max=2\
             &meta-team=storage&expire-in=1h"
        )))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let pin: Value = r.json().unwrap();
    assert_eq!(pin["cid"], cid.as_str());
    assert_eq!(pin["name"], "backup");
    assert_eq!(pin["mode"], "recursive");
    assert_eq!(pin["type"], "pin");
    assert_eq!(pin["max_depth"], -1);
    assert_eq!(pin["replication_factor_min"], 1);
    assert_eq!(pin["replication_factor_max"], 2);
    assert_eq!(pin["metadata"]["team"], "storage");
    assert_ne!(pin["expire_at"], "0001-01-01T00:00:00Z");
    let allocs = pin["allocations"].as_array().unwrap();
    assert!((1..=2).contains(&allocs.len()), "{pin}");

    // GET /allocations[/{cid}] (deltas are batched: the pinset shows the pin once the batch
    // is flushed, within a tick).
    wait_for(Duration::from_secs(10), "the pin in /allocations", || {
        let all = lines(c.get(master.url("/allocations")).send().unwrap());
        all.iter().any(|p| p["cid"] == cid.as_str()).then_some(())
    });
    let one: Value = c
        .get(master.url(&format!("/allocations/{cid}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(one["name"], "backup");

    // GET /pins/{cid}: GlobalPinInfo with a peer_map; pinned where allocated.
    let status = wait_for(Duration::from_secs(30), "pinned on allocations", || {
        let g: Value = c
            .get(master.url(&format!("/pins/{cid}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let map = g["peer_map"].as_object()?;
        let done = allocs.iter().all(|a| {
            map.get(a.as_str().unwrap())
                .is_some_and(|p| p["status"] == "pinned")
        });
        done.then_some(g)
    });
    assert_eq!(status["cid"], cid.as_str());
    assert_eq!(status["name"], "backup");
    let entry = status["peer_map"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    for key in [
        "status",
        "timestamp",
        "error",
        "attempt_count",
        "ipfs_peer_id",
    ] {
        assert!(!entry[key].is_null(), "{key}: {entry}");
    }

    // GET /pins, with filters.
    let all = lines(c.get(master.url("/pins")).send().unwrap());
    assert!(all.iter().any(|g| g["cid"] == cid.as_str()));
    let pinned = lines(c.get(master.url("/pins?filter=pinned")).send().unwrap());
    assert!(pinned.iter().any(|g| g["cid"] == cid.as_str()));
    let none = c.get(master.url("/pins?filter=pin_error")).send().unwrap();
    assert_eq!(none.status(), 204);
    cluster_error(c.get(master.url("/pins?filter=bogus")).send().unwrap(), 400);
    let by_cids = lines(
        c.get(master.url(&format!("/pins?cids={cid}")))
            .send()
            .unwrap(),
    );
    assert_eq!(by_cids.len(), 1);

    // Recover one and all.
    let rec: Value = c
        .post(master.url(&format!("/pins/{cid}/recover")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(rec["cid"], cid.as_str());
    let r = c.post(master.url("/pins/recover")).send().unwrap();
    assert!(r.status() == 200 || r.status() == 204, "{}", r.status());

    // A worker refuses pins with a clear error.
    let msg = cluster_error(
        c.post(worker.url(&format!("/pins/{cid}"))).send().unwrap(),
        403,
    );
    assert!(msg.contains("master"), "{msg}");
    let msg = cluster_error(
        c.delete(worker.url(&format!("/pins/{cid}")))
            .send()
            .unwrap(),
        403,
    );
    assert!(msg.contains("master"), "{msg}");

    // Bad input: 400 with ipfs-cluster's error shape; unknown paths 404.
    cluster_error(c.post(master.url("/pins/not-a-cid")).send().unwrap(), 400);
    cluster_error(
        c.post(master.url(&format!("/pins/{cid}?mode=sideways")))
            .send()
            .unwrap(),
        400,
    );
    cluster_error(
        c.post(master.url(&format!("/pins/{cid}?replication-min=3&replication-max=2")))
            .send()
            .unwrap(),
        400,
    );
    cluster_error(c.get(master.url("/nope")).send().unwrap(), 404);
    let long = "a".repeat(ipfs_kit::api::QUERY_BYTES_MAX + 1);
    cluster_error(
        c.post(master.url(&format!("/pins/{cid}?name={long}")))
            .send()
            .unwrap(),
        400,
    );

    // Bodies: the limit is read and ignored, limit + 1 is 413. The accepted one re-pins the
    // CID, so with its first options: the checks below read them (a re-pin with other options
    // made them depend on whether the batch had flushed yet).
    let max = ipfs_kit::cluster_api::CLUSTER_API_BODY_BYTES_MAX;
    let same = "name=backup&mode=recursive&replication-min=1&replication-max=2\
                &meta-team=storage&expire-in=1h";
    let r = c
        .post(master.url(&format!("/pins/{cid}?{same}")))
        .body(vec![b'x'; max])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    cluster_error(
        c.post(master.url(&format!("/pins/{cid}?{same}")))
            .body(vec![b'x'; max + 1])
            .send()
            .unwrap(),
        413,
    );
    let max = ipfs_kit::cluster_api::STATE_IMPORT_BYTES_MAX;
    cluster_error(
        c.post(master.url("/state/import"))
            .body(vec![b'\n'; max + 1])
            .send()
            .unwrap(),
        413,
    );

    // The CLI through the daemon: status (one line per peer), pin ls, peers, export, import.
    let status_out = m_env.ok(&["cluster", "status", &cid]);
    let mut out_lines = status_out.lines();
    assert_eq!(out_lines.next().unwrap(), format!("{cid} | backup:"));
    let peer_lines: Vec<&str> = out_lines.collect();
    assert!(!peer_lines.is_empty());
    for a in allocs {
        let line = peer_lines
            .iter()
            .find(|l| l.contains(a.as_str().unwrap()))
            .expect("a line per allocated peer");
        assert!(line.contains(": PINNED |"), "{line}");
    }
    let ls = m_env.ok(&["cluster", "pin", "ls"]);
    assert!(
        ls.starts_with(&format!("{cid} | backup | PIN | Repl. Factor: 1--2")),
        "{ls}"
    );
    let peers_out = m_env.ok(&["cluster", "peers"]);
    assert!(peers_out.contains(&master.peer_id), "{peers_out}");
    let export = m_env.ok(&["cluster", "state", "export"]);
    assert_eq!(export.lines().count(), 1);
    let line: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(line["cid"], cid.as_str());
    // Import on the worker is refused; on the master the exported line imports.
    let file = w_env.path("state.jsonl");
    std::fs::write(&file, &export).unwrap();
    let err = w_env.fails(&["cluster", "state", "import", file.to_str().unwrap()]);
    assert!(err.contains("master"), "{err}");
    let out = m_env.ok(&["cluster", "state", "import", file.to_str().unwrap()]);
    assert_eq!(out, "imported 1 pins\n");

    // DELETE /pins/{cid}: the pin removed; a second time 404.
    let r = c
        .delete(master.url(&format!("/pins/{cid}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let gone: Value = r.json().unwrap();
    assert_eq!(gone["cid"], cid.as_str());
    wait_for(Duration::from_secs(10), "the unpin applied", || {
        let r = c
            .get(master.url(&format!("/allocations/{cid}")))
            .send()
            .unwrap();
        (r.status() == 404).then(|| cluster_error(r, 404))
    });
    cluster_error(
        c.delete(master.url(&format!("/pins/{cid}")))
            .send()
            .unwrap(),
        404,
    );
    // CLI pin add/rm round trip.
    let cid2 = master.add(&c, b"second".to_vec());
    let out = m_env.ok(&["cluster", "pin", "add", &cid2, "--name", "two", "-r", "1"]);
    assert!(
        out.starts_with(&format!("{cid2} | two | PIN | Repl. Factor: 1--1")),
        "{out}"
    );
    wait_for(Duration::from_secs(10), "cid2 in the pinset", || {
        let r = c
            .get(master.url(&format!("/allocations/{cid2}")))
            .send()
            .unwrap();
        (r.status() == 200).then_some(())
    });
    assert_eq!(
        m_env.ok(&["cluster", "pin", "rm", &cid2]),
        format!("{cid2}\n")
    );
    let err = w_env.fails(&["cluster", "pin", "add", &cid2]);
    assert!(err.contains("master"), "{err}");
}

#[test]
fn token_required_off_loopback() {
    let env = env_with_role("master");
    // Binding every interface without a token is refused at start.
    let err = ClusterDaemon::try_start(&env, &["--cluster-api", "0.0.0.0:0"], &[])
        .err()
        .expect("the daemon must refuse");
    assert!(err.contains("token"), "{err}");

    // With a token, requests without it are 401 in ipfs-cluster's shape.
    let d = ClusterDaemon::start(
        &env,
        &["--cluster-api", "0.0.0.0:0"],
        &[("IPFS_KIT_API_TOKEN", TOKEN)],
    );
    let port = d.cluster.rsplit(':').next().unwrap();
    let url = format!("http://127.0.0.1:{port}/version");
    let c = client();
    let r = c.get(&url).send().unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    cluster_error(r, 401);
    cluster_error(
        c.get(&url)
            .bearer_auth("wrong-token-0123456789")
            .send()
            .unwrap(),
        401,
    );
    let r = c.get(&url).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(r.status(), 200);
    // The CLI finds the token in the environment.
    let out = env.ok_with(&["cluster", "peers"], &[("IPFS_KIT_API_TOKEN", TOKEN)]);
    assert!(out.contains(&d.peer_id), "{out}");
}

#[test]
fn cli_without_daemon_says_so() {
    let env = env_with_role("master");
    let err = env.fails_one_line(&["cluster", "status"]);
    assert!(err.contains("no cluster API running"), "{err}");
}
