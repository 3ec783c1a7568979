//! The RPC API and the gateway of a real `ipfs-kit daemon` process, driven with a real HTTP
//! client (reqwest): kubo's shapes and errors, limits (limit + 1), token auth, the gateway's
//! trustless and path responses, 429 and 504, the CLI through the daemon, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use common::{random_bytes, Daemon, Env};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::Client;
use serde_json::Value;
use std::io::Read as _;
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-token-0123456789";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn add(c: &Client, d: &Daemon, form: Form, query: &str) -> Vec<Value> {
    let r = c
        .post(format!("{}?{query}", d.url("add")))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    assert_eq!(r.headers()["x-chunked-output"], "1");
    ndjson(&r.text().unwrap())
}

fn file_part(name: &str, data: Vec<u8>) -> Part {
    Part::bytes(data)
        .file_name(name.to_owned())
        .mime_str("application/octet-stream")
        .unwrap()
}

fn dir_part(name: &str) -> Part {
    Part::bytes(Vec::new())
        .file_name(name.to_owned())
        .mime_str("application/x-directory")
        .unwrap()
}

/// kubo's error body, checked for shape; returns the message.
fn kubo_error(r: reqwest::blocking::Response, status: u16, code: u64) -> String {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().unwrap();
    assert_eq!(v["Type"], "error", "{v}");
    assert_eq!(v["Code"], code, "{v}");
    v["Message"].as_str().unwrap().to_owned()
}

/// Adds a directory `d` holding `files` (name, bytes) through `d`'s API with CIDv1; returns
/// the directory's CID and each file's CID by name.
fn add_dir(
    c: &Client,
    d: &Daemon,
    files: &[(&str, Vec<u8>)],
) -> (String, std::collections::HashMap<String, String>) {
    let mut form = Form::new().part("file", dir_part("d"));
    for (i, (name, data)) in files.iter().enumerate() {
        form = form.part(
            format!("file-{i}"),
            file_part(&format!("d/{name}"), data.clone()),
        );
    }
    let lines = add(c, d, form, "cid-version=1");
    let root = lines.last().unwrap()["Hash"].as_str().unwrap().to_owned();
    let cids = lines
        .iter()
        .filter_map(|l| {
            let name = l["Name"].as_str()?.strip_prefix("d/")?;
            Some((name.to_owned(), l["Hash"].as_str()?.to_owned()))
        })
        .collect();
    (root, cids)
}

#[test]
fn add_cat_get_ls_and_kubo_shapes() {
    let env = Env::new();
    let d = Daemon::start(&env, &[], &[]);
    let c = client();
    let big = random_bytes(1_500_000, 1);
    let form = Form::new()
        .part("file", dir_part("d"))
        .part("file-1", file_part("d/big.bin", big.clone()))
        .part("file-2", file_part("d/small.txt", b"hello\n".to_vec()));
    let lines = add(&c, &d, form, "cid-version=1");
    let names: Vec<&str> = lines.iter().map(|l| l["Name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["d/big.bin", "d/small.txt", "d"]);
    assert!(
        lines.iter().all(|l| l["Size"].is_string()),
        "kubo sends Size as a string"
    );
    let root = lines[2]["Hash"].as_str().unwrap().to_owned();
    let big_cid = lines[0]["Hash"].as_str().unwrap().to_owned();
    // With progress (streamed while the upload runs, as kubo does): a {"Name","Bytes"} line
    // per chunk read, growing to each file's size, before that file's line; same CIDs.
    let form = Form::new()
        .part("file", dir_part("d"))
        .part("file-1", file_part("d/big.bin", big.clone()))
        .part("file-2", file_part("d/small.txt", b"hello\n".to_vec()));
    let streamed = add(&c, &d, form, "cid-version=1&progress=true");
    let big_progress: Vec<u64> = streamed
        .iter()
        .take_while(|l| l.get("Hash").is_none())
        .map(|l| {
            assert_eq!(l["Name"], "d/big.bin", "{l}");
            l["Bytes"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(
        big_progress.len(),
        1_500_000usize.div_ceil(262_144),
        "{streamed:?}"
    );
    assert!(big_progress.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(big_progress.last(), Some(&1_500_000));
    let done: Vec<(&str, &str)> = streamed
        .iter()
        .filter(|l| l.get("Hash").is_some())
        .map(|l| (l["Name"].as_str().unwrap(), l["Hash"].as_str().unwrap()))
        .collect();
    assert_eq!(
        done,
        vec![
            ("d/big.bin", big_cid.as_str()),
            ("d/small.txt", lines[1]["Hash"].as_str().unwrap()),
            ("d", root.as_str())
        ]
    );
    // The same bytes through the local importer give the same CID.
    let dir = env.path("d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("small.txt"), b"hello\n").unwrap();
    let opts = ipfs_kit::unixfs::ImportOptions {
        cid_version: Some(cid::Version::V1),
        ..Default::default()
    };
    let local = ipfs_kit::unixfs::dir::import_path(
        &dir,
        &opts,
        &ipfs_kit::unixfs::DiscardSink,
        &mut |_: &ipfs_kit::unixfs::Imported| {},
        &|_: u64| {},
    )
    .unwrap();
    assert_eq!(local.cid.to_string(), root);

    // cat, whole and a slice.
    let r = c
        .post(format!("{}?arg={root}/big.bin", d.url("cat")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), big.as_slice());
    let r = c
        .post(format!(
            "{}?arg={big_cid}&offset=1000&length=5000",
            d.url("cat")
        ))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().as_ref(), &big[1000..6000]);
    // cat of a directory: kubo's error.
    let r = c
        .post(format!("{}?arg={root}", d.url("cat")))
        .send()
        .unwrap();
    assert!(kubo_error(r, 500, 0).contains("directory"));

    // ls: kubo's Objects/Links with UnixFS types.
    let v: Value = c
        .post(format!("{}?arg={root}", d.url("ls")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let links = v["Objects"][0]["Links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["Name"], "big.bin");
    assert_eq!(links[0]["Size"], 1_500_000);
    assert_eq!(links[0]["Type"], 2);

    // get: a tar of the directory.
    let r = c
        .post(format!("{}?arg={root}", d.url("get")))
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    let mut archive = tar::Archive::new(r);
    let mut seen = Vec::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if path.ends_with("big.bin") {
            assert_eq!(data, big);
        }
        seen.push(path);
    }
    assert_eq!(
        seen,
        vec![
            format!("{root}/"),
            format!("{root}/big.bin"),
            format!("{root}/small.txt")
        ]
    );

    // pin ls (both shapes), id, version, repo stat, metrics.
    let v: Value = c
        .post(d.url("pin/ls?type=recursive"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["Keys"][&root]["Type"], "recursive");
    let r = c
        .post(d.url("pin/ls?stream=true"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(ndjson(&r).iter().any(|l| l["Cid"] == root.as_str()));
    let id: Value = c.post(d.url("id")).send().unwrap().json().unwrap();
    assert!(id["ID"].as_str().unwrap().starts_with("12D3KooW"));
    assert_eq!(id["Role"], "worker");
    assert!(id["Addresses"][0].as_str().unwrap().contains("/p2p/"));
    let v: Value = c.post(d.url("version")).send().unwrap().json().unwrap();
    assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
    let v: Value = c.post(d.url("repo/stat")).send().unwrap().json().unwrap();
    assert!(v["NumObjects"].as_u64().unwrap() >= 9);
    let m = c
        .get(format!("{}/debug/metrics/prometheus", d.api))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "ipfs_kit_blockstore_blocks",
        "ipfs_kit_swarm_peers",
        "ipfs_kit_bitswap_blocks_sent_total",
        "ipfs_kit_http_requests_total{server=\"api\",command=\"/api/v0/add\",status=\"200\"} 2",
    ] {
        assert!(m.contains(name), "{name} missing from metrics:\n{m}");
    }
}

#[test]
fn block_dag_pin_and_gc() {
    let env = Env::new();
    let d = Daemon::start(&env, &[], &[]);
    let c = client();
    let put = |query: &str, data: &[u8]| -> Value {
        c.post(format!("{}?{query}", d.url("block/put")))
            .multipart(Form::new().part("data", file_part("", data.to_vec())))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let v = put("", b"a raw block");
    let key = v["Key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("bafkrei"));
    assert_eq!(v["Size"], 11);
    let got = c
        .post(format!("{}?arg={key}", d.url("block/get")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(got.as_ref(), b"a raw block");
    let st: Value = c
        .post(format!("{}?arg={key}", d.url("block/stat")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(st, serde_json::json!({"Key": key, "Size": 11}));
    // A pinned block is not removed; an unpinned one is.
    let pinned = put("pin=true", b"pinned block")["Key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .post(format!("{}?arg={pinned}&arg={key}", d.url("block/rm")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let lines = ndjson(&r);
    assert!(lines[0]["Error"].as_str().unwrap().contains("pinned"));
    assert_eq!(lines[1], serde_json::json!({"Hash": key, "Error": ""}));

    // dag put / get / export / import.
    let v: Value = c
        .post(d.url("dag/put?pin=true"))
        .multipart(Form::new().part(
            "file",
            file_part("", br#"{"hello":"world","n":[1,2]}"#.to_vec()),
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let dag_cid = v["Cid"]["/"].as_str().unwrap().to_owned();
    assert!(dag_cid.starts_with("bafyrei"));
    let got: Value = c
        .post(format!("{}?arg={dag_cid}/n", d.url("dag/get")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(got, serde_json::json!([1, 2]));
    let car = c
        .post(format!("{}?arg={dag_cid}", d.url("dag/export")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let store = ipfs_kit_blockstore::MemoryBlockstore::new();
    let imported =
        ipfs_kit::car::import_car(&ipfs_kit::unixfs::StoreSink(&store), &mut car.as_ref()).unwrap();
    assert_eq!(imported.roots[0].to_string(), dag_cid);
    let r = c
        .post(d.url("dag/import?stats=true"))
        .multipart(Form::new().part("file", file_part("x.car", car.to_vec())))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let lines = ndjson(&r);
    assert_eq!(lines[0]["Root"]["Cid"]["/"], dag_cid.as_str());
    assert_eq!(lines[1]["Stats"]["BlockCount"], 1);

    // pin rm, then gc removes the block; pin add brings nothing back that is gone.
    let v: Value = c
        .post(format!("{}?arg={dag_cid}", d.url("pin/rm")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["Pins"][0], dag_cid.as_str());
    let gc = c.post(d.url("repo/gc")).send().unwrap().text().unwrap();
    assert!(!ndjson(&gc).is_empty(), "gc removed nothing: {gc}");
    let v: Value = c
        .post(format!("{}?arg={pinned}", d.url("pin/add")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["Pins"][0], pinned.as_str());
    let r = c
        .post(format!("{}?arg={pinned}", d.url("pin/ls")))
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    assert_eq!(v["Keys"][&pinned]["Type"], "recursive");
}

#[test]
fn errors_and_size_limits() {
    let env = Env::new();
    let d = Daemon::start(&env, &[], &[]);
    let c = client();
    // A bad CID is kubo's 500 with Code 0; a missing argument 400 with Code 1.
    let msg = kubo_error(c.post(d.url("cat?arg=not-a-cid")).send().unwrap(), 500, 0);
    assert!(msg.contains("invalid"), "{msg}");
    let msg = kubo_error(c.post(d.url("block/stat")).send().unwrap(), 400, 1);
    assert!(msg.contains("argument"), "{msg}");
    kubo_error(
        c.post(d.url("pin/ls?recursive=maybe&stream=x"))
            .send()
            .unwrap(),
        400,
        1,
    );
    // Commands are POST only; unknown ones are 404.
    assert_eq!(c.get(d.url("version")).send().unwrap().status(), 405);
    assert_eq!(c.post(d.url("nope")).send().unwrap().status(), 404);

    // block/put: exactly the limit is stored, one byte more is 413 with kubo's error body.
    let max = ipfs_kit_blockstore::limits::BLOCK_SIZE_BYTES_MAX;
    let r = c
        .post(d.url("block/put"))
        .multipart(Form::new().part("data", file_part("", random_bytes(max, 2))))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let r = c
        .post(d.url("block/put"))
        .multipart(Form::new().part("data", file_part("", random_bytes(max + 1, 3))))
        .send()
        .unwrap();
    assert!(kubo_error(r, 413, 1).contains("limit"));
    // dag/put input: limit + 1 is 413.
    let over = vec![b' '; ipfs_kit::dag::codec::DAG_PUT_INPUT_BYTES_MAX + 1];
    let r = c
        .post(d.url("dag/put"))
        .multipart(Form::new().part("data", file_part("", over)))
        .send()
        .unwrap();
    kubo_error(r, 413, 1);
    // An add part whose path leaves the upload is refused.
    let r = c
        .post(d.url("add"))
        .multipart(Form::new().part("file", file_part("a/../../x", b"x".to_vec())))
        .send()
        .unwrap();
    kubo_error(r, 400, 1);
    // A query string over its limit.
    let long = format!(
        "{}?arg={}",
        d.url("cat"),
        "a".repeat(ipfs_kit::api::QUERY_BYTES_MAX + 1)
    );
    let r = c.post(long).send().unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn token_is_required_off_loopback_and_enforced() {
    let env = Env::new();
    // Off loopback without a token: the daemon refuses to start.
    let o = env.run(&[
        "daemon",
        "--swarm",
        "/ip4/127.0.0.1/tcp/0",
        "--api",
        "0.0.0.0:0",
        "--gateway",
        "127.0.0.1:0",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("token"), "{err}");
    assert!(!env.repo().join("api").exists());

    // With a token, every request must carry it, on the API and the gateway.
    let d = Daemon::start(&env, &[], &[("IPFS_KIT_API_TOKEN", TOKEN)]);
    let c = client();
    let r = c.post(d.url("version")).send().unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    kubo_error(r, 401, 1);
    let r = c
        .post(d.url("version"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c.post(d.url("version")).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{}/ipfs/bafkqaaa", d.gateway))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{}/ipfs/bafkqaaa?format=raw", d.gateway))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "identity CID, empty block");
    // The CLI finds the token in the environment.
    let out = env.ok_with(&["id"], &[("IPFS_KIT_API_TOKEN", TOKEN)]);
    assert!(
        out.contains("\"Role\""),
        "id went through the daemon: {out}"
    );
}

#[test]
fn gateway_trustless_path_range_listing() {
    let env = Env::new();
    let d = Daemon::start(&env, &[], &[]);
    let c = client();
    let big = random_bytes(700_000, 4);
    let form = Form::new()
        .part("file", dir_part("site"))
        .part("file", file_part("site/a.txt", b"alpha".to_vec()))
        .part("file", file_part("site/big.bin", big.clone()))
        .part("file", dir_part("site/sub"))
        .part("file", file_part("site/sub/<b>.html", b"<p>b</p>".to_vec()));
    let lines = add(&c, &d, form, "");
    let root = lines.last().unwrap()["Hash"].as_str().unwrap().to_owned();
    let gw = |p: &str| format!("{}/ipfs/{root}{p}", d.gateway);

    // Path gateway: a file, its type from the name.
    let r = c.get(gw("/a.txt")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(r.headers()["x-ipfs-roots"], root.as_str());
    assert_eq!(r.text().unwrap(), "alpha");
    // Ranges: 206 with Content-Range, 416 past the end.
    let r = c
        .get(gw("/big.bin"))
        .header("Range", "bytes=300000-300099")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 300000-300099/700000");
    assert_eq!(r.bytes().unwrap().as_ref(), &big[300_000..300_100]);
    let r = c
        .get(gw("/big.bin"))
        .header("Range", "bytes=700000-")
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);
    // HEAD: headers only.
    let r = c.head(gw("/big.bin")).send().unwrap();
    assert_eq!(r.headers()["content-length"], "700000");
    // Directory: redirect to the slash form, then an HTML listing with names escaped, or JSON.
    let r = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(gw("/sub"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 301);
    let html = c.get(gw("/sub/")).send().unwrap().text().unwrap();
    assert!(
        html.contains("&lt;b&gt;.html") && !html.contains("<b>.html"),
        "{html}"
    );
    let v: Value = c
        .get(gw("/"))
        .header("Accept", "application/json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = v["Links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a.txt", "big.bin", "sub"]);
    assert_eq!(c.get(gw("/missing")).send().unwrap().status(), 404);
    assert_eq!(
        c.get(format!("{}/ipfs/not-a-cid", d.gateway))
            .send()
            .unwrap()
            .status(),
        400
    );

    // Trustless: the raw block, by query and by Accept; the CAR of a path.
    let block = c
        .post(format!("{}?arg={root}", d.url("block/get")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let r = c.get(gw("?format=raw")).send().unwrap();
    assert_eq!(r.headers()["content-type"], "application/vnd.ipld.raw");
    assert_eq!(r.bytes().unwrap(), block);
    let r = c
        .get(gw(""))
        .header("Accept", "application/vnd.ipld.raw")
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap(), block);
    let r = c
        .get(gw("/big.bin"))
        .header("Accept", "application/vnd.ipld.car")
        .send()
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/vnd.ipld.car"));
    let car = r.bytes().unwrap();
    // Every block verifies; the root is the requested CID and its block comes first.
    let store = ipfs_kit_blockstore::MemoryBlockstore::new();
    let imported =
        ipfs_kit::car::import_car(&ipfs_kit::unixfs::StoreSink(&store), &mut car.as_ref()).unwrap();
    assert_eq!(imported.roots[0].to_string(), root);
    let mut out = Vec::new();
    let file_cid =
        ipfs_kit::unixfs::export::resolve_path(&store, &format!("{root}/big.bin")).unwrap();
    ipfs_kit::unixfs::export::cat(&store, &file_cid, 0, None, &mut out).unwrap();
    assert_eq!(out, big);
    assert_eq!(c.get(gw("?format=tar")).send().unwrap().status(), 400);
    // Gateway requests are counted.
    let m = c
        .get(format!("{}/debug/metrics/prometheus", d.api))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(m.contains("server=\"gateway\""), "{m}");
}

/// What a browser or a cache in front of the gateway relies on: `If-None-Match` answered with
/// 304, `?filename=` and `?download=true` in `Content-Disposition`, a type for a file fetched by
/// bare CID from its first bytes, and no service worker for a whole gateway.
#[test]
fn gateway_caching_names_and_sniffed_types() {
    let env = Env::new();
    let d = Daemon::start(&env, &[], &[]);
    let c = client();
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec();
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\"/>".to_vec();
    let (root, cids) = add_dir(
        &c,
        &d,
        &[
            ("pic", png.clone()),
            ("page", b"<!DOCTYPE html><p>hi</p>".to_vec()),
            ("notes", b"plain words\n".to_vec()),
            ("blob", vec![0, 1, 2, 3, 0xff]),
            ("icon", svg),
            ("index.html", b"<p>index</p>".to_vec()),
        ],
    );
    let cid_of = |name: &str| cids[name].clone();
    let gw = |p: &str| format!("{}/ipfs/{p}", d.gateway);
    let ctype =
        |r: &reqwest::blocking::Response| r.headers()["content-type"].to_str().unwrap().to_owned();

    // By bare CID (no name to go by): the type from the first bytes.
    for (name, want) in [
        ("pic", "image/png"),
        ("page", "text/html; charset=utf-8"),
        ("notes", "text/plain; charset=utf-8"),
        ("blob", "application/octet-stream"),
        ("icon", "image/svg+xml"),
    ] {
        let r = c.get(gw(&cid_of(name))).send().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(ctype(&r), want, "{name}");
        let r = c.head(gw(&cid_of(name))).send().unwrap();
        assert_eq!(ctype(&r), want, "HEAD {name}");
    }
    let r = c.get(gw(&cid_of("pic"))).send().unwrap();
    assert_eq!(r.bytes().unwrap().as_ref(), png.as_slice());

    // ?filename= names the file inline and gives its type; &download=true makes it an
    // attachment; a non-ASCII name comes in both forms.
    let blob = cid_of("blob");
    // (Content-Disposition, Content-Type) of a GET.
    let disposition = |path: &str| {
        let r = c.get(gw(path)).send().unwrap();
        let d = r.headers().get("content-disposition");
        (d.map(|v| v.to_str().unwrap().to_owned()), ctype(&r))
    };
    let (d, t) = disposition(&format!("{blob}?filename=data.txt"));
    assert_eq!(d.as_deref(), Some("inline; filename=\"data.txt\""));
    assert_eq!(t, "text/plain; charset=utf-8");
    let (d, _) = disposition(&format!("{blob}?filename=data.txt&download=true"));
    assert_eq!(d.as_deref(), Some("attachment; filename=\"data.txt\""));
    let (d, t) = disposition(&format!("{blob}?filename=test%D1%82%D0%B5%D1%81%D1%82.pdf"));
    assert_eq!(
        d.as_deref(),
        Some(
            "inline; filename=\"test____.pdf\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.pdf"
        )
    );
    assert_eq!(t, "application/pdf");
    let (d, _) = disposition(&format!("{root}/notes?download=true"));
    assert_eq!(d.as_deref(), Some("attachment; filename=\"notes\""));
    let (d, _) = disposition(&format!("{blob}?format=raw&filename=b.bin"));
    assert_eq!(d.as_deref(), Some("attachment; filename=\"b.bin\""));
    // No parameter: no Content-Disposition on a file.
    assert_eq!(disposition(&blob).0, None);

    // If-None-Match: the ETag a 200 carried gives 304 with no body, for each kind of answer;
    // another tag gives the answer again.
    for path in [
        format!("{root}/notes"),
        format!("{root}/"),
        format!("{root}?format=raw"),
        format!("{root}?format=car"),
        format!("{root}/notes?format=car"),
        format!("{root}/notes?filename=x.txt"),
    ] {
        let r = c.get(gw(&path)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let r = c
            .get(gw(&path))
            .header("If-None-Match", format!("\"nope\", {etag}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 304, "{path}");
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert!(r.bytes().unwrap().is_empty());
        let r = c
            .get(gw(&path))
            .header("If-None-Match", "\"nope\"")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // A CAR of a path is not the CAR of its root: their tags differ.
    let tag = |p: &str| c.get(gw(p)).send().unwrap().headers()["etag"].clone();
    assert_ne!(
        tag(&format!("{root}?format=car")),
        tag(&format!("{root}/notes?format=car"))
    );
    // Under only-if-cached, what is here is served as usual.
    let r = c
        .get(gw(&format!("{root}/notes")))
        .header("Cache-Control", "only-if-cached")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "plain words\n");

    // Service-Worker: script is refused at a bare content root, allowed under it.
    let r = c
        .get(gw(&cid_of("page")))
        .header("Service-Worker", "script")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(gw(&format!("{root}/index.html")))
        .header("Service-Worker", "script")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// CAR answers shaped by the trustless gateway's `dag-scope` (block, entity, all) and
/// `entity-bytes` (a verifiable byte range): the blocks each names, each one verifying, enough
/// to read what was asked and no more.
#[test]
fn gateway_car_scopes_and_entity_bytes() {
    let env = Env::new();
    let d = Daemon::start(&env, &[], &[]);
    let c = client();
    // 700,000 bytes: three 256 KiB chunks (raw leaves) under one root.
    let big = random_bytes(700_000, 9);
    let (root, _) = add_dir(
        &c,
        &d,
        &[("big.bin", big.clone()), ("small.txt", b"small\n".to_vec())],
    );
    let car = |q: &str| {
        let r = c
            .get(format!("{}/ipfs/{root}{q}", d.gateway))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        let bytes = r.bytes().unwrap();
        let store = ipfs_kit_blockstore::MemoryBlockstore::new();
        let imported =
            ipfs_kit::car::import_car(&ipfs_kit::unixfs::StoreSink(&store), &mut bytes.as_ref())
                .unwrap();
        assert_eq!(imported.roots[0].to_string(), root, "{q}");
        (store, etag)
    };
    let count = |s: &ipfs_kit_blockstore::MemoryBlockstore| {
        ipfs_kit_blockstore::Blockstore::all_cids(s).unwrap().len()
    };
    let range = |s: &ipfs_kit_blockstore::MemoryBlockstore, from: u64, len: u64| {
        let file = ipfs_kit::unixfs::export::resolve_path(s, &format!("{root}/big.bin")).unwrap();
        let mut out = Vec::new();
        ipfs_kit::unixfs::export::cat(s, &file, from, Some(len), &mut out).unwrap();
        out
    };

    // all (the default): directory, file root, three leaves.
    let (all, all_tag) = car("/big.bin?format=car");
    assert_eq!(count(&all), 5);
    assert_eq!(range(&all, 0, 700_000), big);
    // block: the path's blocks only.
    let (block, block_tag) = car("/big.bin?format=car&dag-scope=block");
    assert_eq!(count(&block), 2);
    // entity of a file: all of it; of a directory: the directory's own block.
    let (entity, _) = car("/big.bin?format=car&dag-scope=entity");
    assert_eq!(count(&entity), 5);
    let (dir, _) = car("?format=car&dag-scope=entity");
    assert_eq!(count(&dir), 1);
    // entity-bytes: the leaves under the range, which read back as the file's bytes.
    let (part, part_tag) = car("/big.bin?format=car&dag-scope=entity&entity-bytes=300000:300099");
    assert_eq!(count(&part), 3);
    assert_eq!(range(&part, 300_000, 100), &big[300_000..300_100]);
    let (across, _) = car("/big.bin?format=car&entity-bytes=262000:262999");
    assert_eq!(count(&across), 4, "a range over two chunks");
    assert_eq!(range(&across, 262_000, 1000), &big[262_000..263_000]);
    let (tail, _) = car("/big.bin?format=car&dag-scope=entity&entity-bytes=-100:*");
    assert_eq!(count(&tail), 3);
    assert_eq!(range(&tail, 699_900, 100), &big[699_900..]);
    // Past the end: the file's root only, to show its size.
    let (none, _) = car("/big.bin?format=car&dag-scope=entity&entity-bytes=800000:*");
    assert_eq!(count(&none), 2);
    // Each shape has its own tag.
    let tags = [&all_tag, &block_tag, &part_tag];
    assert!(tags.iter().all(|t| t.starts_with("W/")), "{tags:?}");
    assert_ne!(all_tag, block_tag);
    assert_ne!(block_tag, part_tag);
    // Values the spec does not allow.
    for q in ["dag-scope=most", "entity-bytes=9:1", "entity-bytes=x"] {
        let r = c
            .get(format!("{}/ipfs/{root}/big.bin?format=car&{q}", d.gateway))
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
}

/// `refs` (direct, `-r`, `--unique`, `--edges`, `--format`, `max-depth`), `refs/local` and
/// `dag/stat` in kubo's shapes; `refs -r` of a DAG another node holds makes it local, as
/// kubo's does.
#[test]
fn refs_and_dag_stat() {
    let (ex, ey) = (Env::new(), Env::new());
    let (x, y) = (Daemon::start(&ex, &[], &[]), Daemon::start(&ey, &[], &[]));
    let c = client();
    let big = random_bytes(700_000, 5);
    // Two files with the same bytes: one CID linked twice.
    let (root, cids) = add_dir(
        &c,
        &y,
        &[
            ("a.txt", b"alpha".to_vec()),
            ("big.bin", big.clone()),
            ("same.txt", b"alpha".to_vec()),
        ],
    );
    let cid_of = |name: &str| cids[name].clone();
    let (a, big_cid) = (cid_of("a.txt"), cid_of("big.bin"));
    let refs = |d: &Daemon, q: &str| -> Vec<String> {
        let r = c
            .post(format!("{}?arg={root}{q}", d.url("refs")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
        ndjson(&r.text().unwrap())
            .iter()
            .map(|v| {
                assert_eq!(v["Err"], "", "{q}: {v}");
                v["Ref"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(refs(&y, ""), vec![a.clone(), big_cid.clone(), a.clone()]);
    assert_eq!(refs(&y, "&unique=true"), vec![a.clone(), big_cid.clone()]);
    assert_eq!(refs(&y, "&recursive=true&max-depth=1"), refs(&y, ""));
    assert_eq!(
        refs(&y, "&format=%3Clinkname%3E"),
        vec!["a.txt", "big.bin", "same.txt"]
    );
    assert_eq!(refs(&y, "&edges=true")[0], format!("{root} -> {a}"));
    let r = c
        .post(format!("{}?arg={root}&edges=true&format=x", y.url("refs")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    // The file's three leaves under it; --unique prints the shared one once.
    let all = refs(&y, "&recursive=true");
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(all[1], big_cid);
    let leaves = all[2..5].to_vec();
    assert_eq!(refs(&y, "&recursive=true&unique=true").len(), 5);

    // dag/stat: six distinct blocks (the directory, the shared file, big.bin and its leaves).
    let v: Value = c
        .post(format!("{}?arg={root}&progress=false", y.url("dag/stat")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["UniqueBlocks"], 6, "{v}");
    assert_eq!(v["DagStats"][0]["Cid"], root.as_str());
    assert_eq!(v["DagStats"][0]["NumBlocks"], 6);
    let total = v["TotalSize"].as_u64().unwrap();
    assert!(total > 700_000 && total < 701_000, "{v}");
    assert!(v.get("SharedSize").is_none(), "nothing shared: {v}");
    // With progress (kubo's default): a line per block, then the summary.
    let text = c
        .post(format!("{}?arg={root}&arg={big_cid}", y.url("dag/stat")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let progress = ndjson(&text);
    let last = progress.last().unwrap();
    assert_eq!(progress.len(), 6 + 4 + 1);
    assert_eq!(last["UniqueBlocks"], 6);
    assert_eq!(last["DagStats"].as_array().unwrap().len(), 2);
    assert_eq!(
        last["SharedSize"].as_u64().unwrap(),
        last["DagStats"][1]["Size"].as_u64().unwrap()
    );

    // refs -r on a node without the DAG fetches it: the leaves are then X's own blocks.
    let r = c
        .post(format!("{}?arg={}", x.url("swarm/connect"), y.swarm))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(refs(&x, "&recursive=true"), all);
    let local: Vec<String> = ndjson(&c.post(x.url("refs/local")).send().unwrap().text().unwrap())
        .iter()
        .map(|v| v["Ref"].as_str().unwrap().to_owned())
        .collect();
    for leaf in &leaves {
        assert!(local.contains(leaf), "{leaf} not in {local:?}");
    }
}

/// kubo's smaller commands: `dag/resolve`, `repo/verify`, `repo/version`, `stats/repo`,
/// `stats/bitswap`, `swarm/addrs[/local]`, and `shutdown`, which stops the daemon as SIGTERM
/// does.
#[test]
fn small_commands_and_shutdown() {
    let (ex, ey) = (Env::new(), Env::new());
    let (x, y) = (Daemon::start(&ex, &[], &[]), Daemon::start(&ey, &[], &[]));
    let c = client();
    let form = Form::new()
        .part("file", dir_part("d"))
        .part("file-1", file_part("d/a.txt", b"alpha".to_vec()));
    let lines = add(&c, &x, form, "");
    let root = lines.last().unwrap()["Hash"].as_str().unwrap().to_owned();
    let a = lines[0]["Hash"].as_str().unwrap().to_owned();
    let post = |d: &Daemon, cmd: &str| -> Value {
        let r = c.post(d.url(cmd)).send().unwrap();
        assert_eq!(r.status(), 200, "{cmd}");
        let text = r.text().unwrap();
        ndjson(&text).pop().unwrap_or(Value::Null)
    };
    let v = post(&x, &format!("dag/resolve?arg=/ipfs/{root}/a.txt"));
    assert_eq!(v["Cid"]["/"], a.as_str());
    assert_eq!(v["RemPath"], "");
    assert_eq!(
        post(&x, "repo/verify")["Msg"],
        "verify complete, all blocks validated."
    );
    assert!(post(&x, "repo/version")["Version"].is_string());
    assert_eq!(
        post(&x, "stats/repo")["NumObjects"],
        post(&x, "repo/stat")["NumObjects"]
    );
    assert!(post(&x, "stats/bitswap")["BlocksReceived"].is_u64());
    let local = post(&x, "swarm/addrs/local?id=true");
    let first = local["Strings"][0].as_str().unwrap().to_owned();
    assert!(first.ends_with(&format!("/p2p/{}", x.peer_id)), "{local}");
    let r = c
        .post(format!("{}?arg={}", x.url("swarm/connect"), y.swarm))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let addrs = post(&x, "swarm/addrs");
    assert!(addrs["Addrs"][&y.peer_id].is_array(), "{addrs}");

    // pin/update: the new root pinned in the old one's place.
    let beta = add(
        &c,
        &x,
        Form::new().part("file", file_part("b.txt", b"beta".to_vec())),
        "pin=false",
    );
    let beta = beta[0]["Hash"].as_str().unwrap().to_owned();
    let v = post(&x, &format!("pin/update?arg={root}&arg={beta}"));
    assert_eq!(v["Pins"], serde_json::json!([root, beta]));
    let pins = post(&x, "pin/ls?type=recursive");
    assert!(
        pins["Keys"].get(&beta).is_some() && pins["Keys"].get(&root).is_none(),
        "{pins}"
    );
    let r = c
        .post(format!("{}?arg={root}&arg={beta}", x.url("pin/update")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 500, "from is no longer pinned");

    // shutdown: answered, then the daemon exits cleanly and removes its api file.
    let mut x = x;
    assert_eq!(ex.ok(&["shutdown"]), "");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = x.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "daemon still running");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    assert!(!ex.repo().join("api").exists(), "api file left behind");
    // The repository is whole: the CLI reads it on its own.
    assert_eq!(ex.ok(&["cat", &a]), "alpha");
    drop(y);
}

/// `ping` over the API (kubo's lines, as they happen) and through the CLI (kubo's text); its
/// errors: a count of 0, ourselves, and a peer nobody knows. Then `bitswap/ledger` on both
/// sides of a fetch, `bootstrap` edits and `swarm peering`.
#[test]
fn ping_bootstrap_and_bitswap_ledger() {
    let (ex, ey) = (Env::new(), Env::new());
    let (x, y) = (Daemon::start(&ex, &[], &[]), Daemon::start(&ey, &[], &[]));
    let c = client();
    // By address, not yet connected: x dials y, then two round trips a second apart.
    let started = Instant::now();
    let r = c
        .post(format!("{}?arg={}&count=2", x.url("ping"), y.swarm))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let lines = ndjson(&r.text().unwrap());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "pings 1 s apart"
    );
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["Text"], format!("PING {}.", y.peer_id));
    for pong in &lines[1..3] {
        assert_eq!(pong["Success"], true, "{pong}");
        assert_eq!(pong["Text"], "");
        let nanos = pong["Time"].as_u64().unwrap();
        assert!(nanos > 0 && nanos < 10_000_000_000, "{pong}");
    }
    let average = lines[3]["Text"].as_str().unwrap();
    assert!(
        average.starts_with("Average latency: ") && average.ends_with("ms"),
        "{average}"
    );
    // id of another peer: what identify told us, in kubo's shape.
    let v: Value = c
        .post(format!("{}?arg={}", x.url("id"), y.peer_id))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["ID"], y.peer_id.as_str());
    assert_eq!(v["ProtocolVersion"], "ipfs/0.1.0", "{v}");
    assert!(
        v["AgentVersion"].as_str().unwrap().starts_with("ipfs-kit/"),
        "{v}"
    );
    let own: Value = c.post(y.url("id")).send().unwrap().json().unwrap();
    assert_eq!(
        v["PublicKey"], own["PublicKey"],
        "the key identify gave is y's own"
    );
    let cli: Value = serde_json::from_str(&ex.ok(&["id", &y.peer_id])).unwrap();
    assert_eq!(cli, v);
    let offline = Env::new().fails_one_line(&["id", &y.peer_id]);
    assert!(offline.contains("online mode"), "{offline}");
    // By peer ID, now connected; through the CLI, kubo's text.
    let out = ex.ok(&["ping", "-n", "1", &y.peer_id]);
    let out: Vec<&str> = out.lines().collect();
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[0], format!("PING {}.", y.peer_id));
    assert!(out[1].starts_with("Pong received: time=") && out[1].ends_with(" ms"));
    assert!(out[2].starts_with("Average latency: "), "{out:?}");
    // Errors before any line: a bad count, ourselves.
    let r = c
        .post(format!("{}?arg={}&count=0", x.url("ping"), y.peer_id))
        .send()
        .unwrap();
    assert!(kubo_error(r, 400, 1).contains("ping count must be greater than 0, was 0"));
    let r = c
        .post(format!("{}?arg={}", x.url("ping"), x.peer_id))
        .send()
        .unwrap();
    assert!(kubo_error(r, 400, 1).contains("can't ping self"));
    // A peer nobody knows: looked up in the DHT, not found, and the CLI says the ping failed.
    let nobody = ipfs_kit::net::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();
    let r = c
        .post(format!("{}?arg={nobody}", x.url("ping")))
        .send()
        .unwrap();
    let lines = ndjson(&r.text().unwrap());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["Text"], format!("Looking up peer {nobody}"));
    assert_eq!(lines[1]["Success"], false);
    let text = lines[1]["Text"].as_str().unwrap();
    assert!(text.starts_with("Ping error: peer lookup failed"), "{text}");
    assert_eq!(
        ex.fails(&["ping", "-n", "1", &nobody]),
        "Error: ping failed"
    );
    let out = ex.run(&["ping", "-n", "1", &nobody]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().next(),
        Some(format!("Looking up peer {nobody}").as_str())
    );
    assert!(
        stdout.contains("Ping error: peer lookup failed"),
        "{stdout}"
    );

    // bitswap/ledger: x fetches a file from y; both ledgers count its bytes and blocks.
    let data = random_bytes(600 * 1024, 9);
    let lines = add(
        &c,
        &y,
        Form::new().part("file", file_part("f", data.clone())),
        "",
    );
    let cid = lines[0]["Hash"].as_str().unwrap().to_owned();
    let r = c
        .post(format!("{}?arg={cid}", x.url("cat")))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().to_vec(), data);
    let ledger = |d: &Daemon, peer: &str| -> Value {
        let r = c
            .post(format!("{}?arg={peer}", d.url("bitswap/ledger")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    let (at_x, at_y) = (ledger(&x, &y.peer_id), ledger(&y, &x.peer_id));
    assert_eq!(at_x["Peer"], y.peer_id.as_str());
    // A 600 KiB file is three 256 KiB chunks and their root: four blocks, with the chunks'
    // bytes and the root's.
    let recv = at_x["Recv"].as_u64().unwrap();
    assert!(
        recv > data.len() as u64 && recv < data.len() as u64 + 4096,
        "{at_x}"
    );
    assert_eq!(at_x["Sent"], 0);
    assert_eq!(at_x["Exchanged"], 4, "{at_x}");
    assert_eq!(at_y["Sent"], recv, "{at_y}");
    assert_eq!(at_y["Recv"], 0);
    assert_eq!(at_y["Exchanged"], 4);
    assert!((at_y["Value"].as_f64().unwrap() - recv as f64).abs() < 1e-6);
    assert_eq!(at_x["Value"], 0.0);
    let out = ey.ok(&["bitswap", "ledger", &x.peer_id]);
    assert_eq!(
        out,
        format!(
            "Ledger for {}\nDebt ratio:\t{:.6}\nExchanges:\t4\nBytes sent:\t{recv}\nBytes received:\t0\n",
            x.peer_id, recv as f64
        )
    );
    // bootstrap over the API: kubo's shapes, written to the repository's config.
    let post = |cmd: &str| -> (u16, Value) {
        let r = c.post(x.url(cmd)).send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    let (status, v) = post("bootstrap/add/default");
    assert_eq!(status, 200);
    assert_eq!(
        v["Peers"].as_array().unwrap().len(),
        ipfs_kit::config::KUBO_DEFAULT_BOOTSTRAP.len()
    );
    let (_, v) = post("bootstrap/list");
    assert_eq!(v["Peers"][0], ipfs_kit::config::KUBO_DEFAULT_BOOTSTRAP[0]);
    assert_eq!(
        ex.ok(&["bootstrap"]).lines().count(),
        v["Peers"].as_array().unwrap().len()
    );
    let own = format!("{}", y.swarm);
    let (_, v) = post(&format!("bootstrap/add?arg={own}"));
    assert_eq!(v["Peers"], serde_json::json!([own]));
    let (status, v) = post("bootstrap/add?arg=/ip4/10.0.0.1/tcp/1");
    assert_eq!((status, v["Type"].as_str()), (400, Some("error")), "{v}");
    let (_, v) = post(&format!("bootstrap/rm?arg=/p2p/{}", y.peer_id));
    assert_eq!(v["Peers"], serde_json::json!([own]));
    let (_, v) = post("bootstrap/rm/all");
    assert_eq!(
        v["Peers"].as_array().unwrap().len(),
        ipfs_kit::config::KUBO_DEFAULT_BOOTSTRAP.len()
    );
    assert_eq!(post("bootstrap").1["Peers"], serde_json::json!([]));

    // swarm peering through the CLI (the daemon's API): kubo's text.
    assert_eq!(
        ex.ok(&["swarm", "peering", "add", &y.swarm]),
        format!("add {} success\n", y.peer_id)
    );
    assert_eq!(
        ex.ok(&["swarm", "peering", "ls"]),
        format!("{}\n", y.peer_id)
    );
    let (_, v) = post("swarm/peering/ls");
    assert_eq!(v["Peers"][0]["Addrs"][0], y.swarm.as_str(), "{v}");
    assert_eq!(
        ex.ok(&["swarm", "peering", "rm", &y.peer_id]),
        format!("remove {} success\n", y.peer_id)
    );
    assert_eq!(ex.ok(&["swarm", "peering", "ls"]), "");
    let r = c
        .post(format!(
            "{}?arg=/ip4/127.0.0.1/tcp/1",
            x.url("swarm/peering/add")
        ))
        .send()
        .unwrap();
    assert!(kubo_error(r, 400, 1).contains("/p2p/"));

    // A peer we never met: zeros, as kubo.
    let none = ledger(&x, &nobody);
    assert_eq!(
        (none["Sent"].as_u64(), none["Exchanged"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn gateway_429_past_the_limit_and_504_on_timeout() {
    let env = Env::new();
    let d = Daemon::start(
        &env,
        &["--gateway-requests-max", "1", "--gateway-timeout-secs", "1"],
        &[],
    );
    let c = client();
    let big = random_bytes(32 * 1024 * 1024, 5);
    let lines = add(&c, &d, Form::new().part("file", file_part("big", big)), "");
    let cid = lines[0]["Hash"].as_str().unwrap().to_owned();
    // One request holds the only slot while its body is unread.
    let held = c.get(format!("{}/ipfs/{cid}", d.gateway)).send().unwrap();
    assert_eq!(held.status(), 200);
    let r = c.get(format!("{}/ipfs/{cid}", d.gateway)).send().unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "5");
    drop(held);
    // Once the first answer is gone, the slot is free again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.head(format!("{}/ipfs/{cid}", d.gateway)).send().unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Content nobody has: the retrieval times out, 504.
    let absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let started = Instant::now();
    let r = c
        .get(format!("{}/ipfs/{absent}", d.gateway))
        .send()
        .unwrap();
    assert_eq!(r.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn cli_through_daemon_and_graceful_shutdown() {
    let env = Env::new();
    let d = Daemon::start(&env, &[], &[]);
    assert!(env.repo().join("api").is_file());
    let file = env.path("f.bin");
    let data = random_bytes(3 * 1024 * 1024, 6);
    std::fs::write(&file, &data).unwrap();
    // The daemon holds the repository: these only work through its API.
    let out = env.ok(&["add", "-Q", file.to_str().unwrap()]);
    let cid = out.trim().to_owned();
    assert_eq!(env.ok_bytes(&["cat", &cid]), data);
    assert!(env.ok(&["pin", "ls", "--type=recursive"]).contains(&cid));
    assert!(env.ok(&["ls", &cid]).lines().count() >= 1);
    let id: Value = serde_json::from_str(&env.ok(&["id"])).unwrap();
    assert_eq!(id["Role"], "worker");
    // add -w through the daemon wraps as the CLI does on its own (the same directory CID).
    let wrapped = env.ok(&["add", "-Q", "-w", file.to_str().unwrap()]);
    let offline = Env::new().ok(&["add", "-Q", "-n", "-w", file.to_str().unwrap()]);
    assert_eq!(wrapped, offline);
    assert_ne!(wrapped.trim(), cid);
    // refs and dag stat print what they print offline: 3 MiB is 12 chunks.
    assert_eq!(env.ok(&["refs", "-r", &cid]).lines().count(), 12);
    assert!(env.ok(&["refs", "local"]).lines().count() >= 13);
    assert!(env.ok(&["dag", "stat", &cid]).contains("Unique Blocks: 13"));

    // An in-flight download finishes across SIGTERM; then the api file is gone.
    let c = client();
    let mut r = c
        .post(format!("{}?arg={cid}", d.url("cat")))
        .send()
        .unwrap();
    let mut first = vec![0u8; 1024];
    r.read_exact(&mut first).unwrap();
    let mut d = d;
    d.sigterm();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    first.extend(rest);
    assert_eq!(first, data, "the in-flight answer was cut by shutdown");
    let status = d.child.wait().unwrap();
    assert!(status.success());
    assert!(!env.repo().join("api").exists(), "api file left behind");
    // Without a daemon the CLI opens the repository itself.
    assert_eq!(env.ok_bytes(&["cat", &cid]), data);
    drop(d);
}

/// `DataReceived` of `d`'s bitswap (`bitswap/stat`).
fn data_received(c: &Client, d: &Daemon) -> u64 {
    let v: Value = c
        .post(d.url("bitswap/stat"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["DataReceived"].as_u64().unwrap()
}

/// A path into a directory another node holds fetches the blocks on the way and what the
/// answer reads, not the DAG under the path's root (as kubo does): through the gateway (a
/// file, a listing, a byte range, HEAD), `cat`, `ls`, `dag get` and `pin add`.
#[test]
fn paths_fetch_only_what_they_read() {
    let (ex, ey) = (Env::new(), Env::new());
    let (x, y) = (Daemon::start(&ex, &[], &[]), Daemon::start(&ey, &[], &[]));
    let c = client();
    let big = random_bytes(8 << 20, 31);
    let form = Form::new()
        .part("file", dir_part("d"))
        .part("file-1", file_part("d/big.bin", big.clone()))
        .part("file-2", dir_part("d/sub"))
        .part("file-3", file_part("d/sub/deep.txt", b"deep\n".to_vec()))
        .part("file-4", file_part("d/small.txt", b"hello\n".to_vec()));
    let lines = add(&c, &y, form, "cid-version=1");
    let root = lines.last().unwrap()["Hash"].as_str().unwrap().to_owned();
    assert_eq!(lines.last().unwrap()["Name"], "d");
    let r = c
        .post(format!("{}?arg={}", x.url("swarm/connect"), y.swarm))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    // Well under one of big.bin's 32 chunks of 256 KiB.
    const SMALL: u64 = 64 * 1024;

    // `Cache-Control: only-if-cached` of what X does not hold: 412 with no payload, nothing
    // fetched (path gateway spec).
    let small_url = format!("{}/ipfs/{root}/small.txt", x.gateway);
    let r = c
        .head(&small_url)
        .header("Cache-Control", "only-if-cached")
        .send()
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = c
        .get(&small_url)
        .header("Cache-Control", "max-age=0, only-if-cached")
        .send()
        .unwrap();
    assert_eq!(r.status(), 412);
    assert!(r.bytes().unwrap().is_empty());
    assert_eq!(data_received(&c, &x), 0);

    let r = c
        .get(format!("{}/ipfs/{root}/small.txt", x.gateway))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), b"hello\n");
    let r = c
        .post(format!("{}?arg=/ipfs/{root}/sub/deep.txt", x.url("cat")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), b"deep\n");
    // ls reads the entries' top blocks: big.bin's size comes from its root, not its leaves.
    let v: Value = c
        .post(format!("{}?arg={root}", x.url("ls")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let links = v["Objects"][0]["Links"].as_array().unwrap();
    let big_link = links.iter().find(|l| l["Name"] == "big.bin").unwrap();
    assert_eq!(big_link["Size"], big.len() as u64);
    let v: Value = c
        .post(format!("{}?arg={root}/sub", x.url("dag/get")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["Links"][0]["Name"], "deep.txt", "{v}");
    // The gateway's listing: the entries' top blocks too.
    let listing = c
        .get(format!("{}/ipfs/{root}/sub/", x.gateway))
        .send()
        .unwrap();
    assert_eq!(listing.status(), 200);
    assert!(listing.text().unwrap().contains("deep.txt"));
    let head = c
        .head(format!("{}/ipfs/{root}/big.bin", x.gateway))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        big.len().to_string().as_str()
    );
    // The client holds big.bin (its ETag): 304 before any of the file is fetched.
    let etag = head.headers()["etag"].clone();
    let r = c
        .get(format!("{}/ipfs/{root}/big.bin", x.gateway))
        .header("If-None-Match", etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().unwrap().is_empty());
    // big.bin's top block is here now: a HEAD under only-if-cached answers from it.
    let r = c
        .head(format!("{}/ipfs/{root}/big.bin", x.gateway))
        .header("Cache-Control", "only-if-cached")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        big.len().to_string().as_str()
    );
    let got = data_received(&c, &x);
    assert!(got < SMALL, "{got} bytes received for a few small blocks");

    // A byte range reads the chunks under it.
    let r = c
        .get(format!("{}/ipfs/{root}/big.bin", x.gateway))
        .header("Range", "bytes=300000-300099")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &big[300_000..300_100]);
    let got = data_received(&c, &x);
    assert!(
        got < 2 * 256 * 1024 + SMALL,
        "{got} bytes received for one range"
    );

    // A CAR of the file's top block, then of one byte range of it (trustless gateway's
    // dag-scope and entity-bytes): what they name, not the file.
    let before = data_received(&c, &x);
    let car = c
        .get(format!(
            "{}/ipfs/{root}/big.bin?format=car&dag-scope=block",
            x.gateway
        ))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(car.len() < 64 * 1024, "{} bytes of CAR", car.len());
    let car = c
        .get(format!(
            "{}/ipfs/{root}/big.bin?format=car&entity-bytes=2000000:2000099",
            x.gateway
        ))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(car.len() < 2 * 256 * 1024, "{} bytes of CAR", car.len());
    let got = data_received(&c, &x) - before;
    assert!(
        got < 256 * 1024 + SMALL,
        "{got} bytes received for two small CARs"
    );

    // A pin of a path pins what the path names, and fetches its DAG only.
    let v: Value = c
        .post(format!("{}?arg={root}/sub", x.url("pin/add")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let sub = v["Pins"][0].as_str().unwrap().to_owned();
    assert_ne!(sub, root);
    assert!(data_received(&c, &x) < 2 * 256 * 1024 + SMALL);

    // A range over many chunks (several read at once): the same bytes, in order.
    let r = c
        .get(format!("{}/ipfs/{root}/big.bin", x.gateway))
        .header("Range", "bytes=100000-5000000")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &big[100_000..=5_000_000]);
    // `cat` of a part of it (past what the range read) fetches the chunks under that part only.
    let before = data_received(&c, &x);
    let part = c
        .post(format!(
            "{}?arg={root}/big.bin&offset=6000000&length=100",
            x.url("cat")
        ))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(part.as_ref(), &big[6_000_000..6_000_100]);
    let got = data_received(&c, &x) - before;
    assert!(
        got < 2 * 256 * 1024 + SMALL,
        "{got} bytes received for cat --offset --length"
    );

    // The whole file: all of it, fetched in bulk.
    let r = c
        .get(format!("{}/ipfs/{root}/big.bin", x.gateway))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), big.as_slice());
    assert!(data_received(&c, &x) >= big.len() as u64);
}
