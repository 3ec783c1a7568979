//! `id`, `version`, `ping`, `swarm/*`, `routing/*`, `bitswap/*` and `stats/bw` over the RPC
//! API.
//!
//! Routing answers are kubo's `QueryEvent` lines (`{"Extra","ID","Responses","Type"}`) with
//! kubo's event types. `stats/bw` reports the bytes of every protocol on every connection, or
//! of one peer or one protocol (counted at the transport, `net::bandwidth`), with rates over
//! the interval since the previous call, or streamed every `interval` with `poll`.

use super::blocks::ndjson;
use super::{parse_cid, ApiError, ApiState, Args};
use crate::net::bandwidth::{self, BandwidthTotals};
use crate::net::{Multiaddr, PeerId};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::Instant;

/// kubo's `routing.QueryEventType` values used here.
const EVENT_FINAL_PEER: u8 = 2;
const EVENT_PROVIDER: u8 = 4;
/// Providers `routing/findprovs` returns by default (kubo's `--num-providers`).
pub const FIND_PROVIDERS_DEFAULT: usize = 20;

fn parse_peer(s: &str) -> Result<PeerId, ApiError> {
    s.parse::<PeerId>()
        .map_err(|e| ApiError::internal(format!("invalid peer ID {s:?}: {e}")))
}

/// A multiaddr that names a peer (`.../p2p/<id>`), and that peer; kubo's 400 otherwise.
fn parse_peer_addr(text: &str) -> Result<(Multiaddr, PeerId), ApiError> {
    let addr: Multiaddr = text
        .parse()
        .map_err(|e| ApiError::bad_request(format!("invalid multiaddr {text:?}: {e}")))?;
    let peer = crate::net::node::peer_of(&addr).ok_or_else(|| {
        ApiError::bad_request(format!("{text}: no /p2p/<peer id> in the address"))
    })?;
    Ok((addr, peer))
}

/// `POST /api/v0/id[?arg=<peer>]`: kubo's identity object, plus this node's `Role`.
pub async fn id(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    if let Some(peer) = args.get("arg") {
        let peer = parse_peer(peer)?;
        let node = state.node()?;
        if peer != node.peer_id() {
            // As kubo: a peer not connected is looked up in the DHT (and here dialed, so that
            // identify tells its agent, key and protocols).
            let info = node.identify_peer(peer).await?;
            let addrs: Vec<String> = info.listen_addrs.iter().map(|a| a.to_string()).collect();
            return Ok(Json(json!({
                "ID": peer.to_string(),
                "PublicKey": base64::engine::general_purpose::STANDARD.encode(&info.public_key),
                "Addresses": addrs,
                "AgentVersion": info.agent_version.unwrap_or_default(),
                "ProtocolVersion": info.protocol_version.unwrap_or_default(),
                "Protocols": info.protocols,
            }))
            .into_response());
        }
    }
    let peer_id = match (&state.public_key, &state.node) {
        (Some(k), _) => k.to_peer_id(),
        (None, Some(n)) => n.peer_id(),
        (None, None) => return Err(ApiError::internal("this node has no identity")),
    };
    let public_key = state
        .public_key
        .as_ref()
        .map(|k| base64::engine::general_purpose::STANDARD.encode(k.encode_protobuf()))
        .unwrap_or_default();
    let addresses: Vec<String> = match &state.node {
        Some(n) => n
            .listen_addrs()
            .await?
            .into_iter()
            .map(|a| format!("{a}/p2p/{peer_id}"))
            .collect(),
        None => Vec::new(),
    };
    let protocols: Vec<String> = crate::net::protocols()
        .iter()
        .map(|p| p.to_string())
        .collect();
    Ok(Json(json!({
        "ID": peer_id.to_string(),
        "PublicKey": public_key,
        "Addresses": addresses,
        "AgentVersion": crate::net::agent_version(),
        "ProtocolVersion": crate::net::behaviour::IDENTIFY_PROTOCOL_VERSION,
        "Protocols": protocols,
        "Role": state.role.as_str(),
    }))
    .into_response())
}

/// `POST /api/v0/version`.
pub async fn version(RawQuery(_q): RawQuery) -> Response {
    Json(json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Commit": "",
        "Repo": crate::repo::REPO_VERSION.to_string(),
        "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        "Golang": "",
    }))
    .into_response()
}

/// `POST /api/v0/swarm/peers`: `{"Peers":[{"Addr","Peer","Latency","Muxer","Direction","Streams"}]}`.
pub async fn swarm_peers(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let node = state.node()?;
    let mut peers = Vec::new();
    for peer in node.peers().await? {
        let info = node.peer_info(peer).await?.unwrap_or_default();
        let addr = info
            .addr
            .or_else(|| info.listen_addrs.first().cloned())
            .map(|a| a.to_string())
            .unwrap_or_default();
        peers.push(json!({
            "Addr": addr,
            "Peer": peer.to_string(),
            "Latency": info.rtt.map(|d| format!("{d:?}")).unwrap_or_default(),
            "Muxer": "",
            "Direction": 0,
            "Streams": Value::Null,
        }));
    }
    Ok(Json(json!({ "Peers": peers })).into_response())
}

/// `POST /api/v0/swarm/connect?arg=<multiaddr>...`: `{"Strings":["connect <peer> success"]}`.
pub async fn swarm_connect(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let addrs = args.required_args("address")?;
    let node = state.node()?;
    let mut out = Vec::new();
    for a in addrs {
        let addr: Multiaddr = a
            .parse()
            .map_err(|e| ApiError::internal(format!("invalid multiaddr {a:?}: {e}")))?;
        let peer = node
            .connect(addr)
            .await
            .map_err(|e| ApiError::internal(format!("connect failure: {e}")))?;
        out.push(format!("connect {peer} success"));
    }
    Ok(Json(json!({ "Strings": out })).into_response())
}

/// `POST /api/v0/swarm/disconnect?arg=<multiaddr with /p2p/<id>>...`.
pub async fn swarm_disconnect(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let addrs = args.required_args("address")?;
    let node = state.node()?;
    let mut out = Vec::new();
    for a in addrs {
        let peer = match a.parse::<Multiaddr>() {
            Ok(addr) => crate::net::node::peer_of(&addr)
                .ok_or_else(|| ApiError::internal(format!("{a}: no /p2p/<peer id> in address")))?,
            Err(_) => parse_peer(&a)?,
        };
        if !node.disconnect(peer).await? {
            return Err(ApiError::internal(format!(
                "disconnect {peer} failure: not connected"
            )));
        }
        out.push(format!("disconnect {peer} success"));
    }
    Ok(Json(json!({ "Strings": out })).into_response())
}

fn peer_event(kind: u8, peer: &PeerId, addrs: &[Multiaddr]) -> Value {
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    json!({
        "Extra": "",
        "ID": "",
        "Responses": [{"Addrs": addrs, "ID": peer.to_string()}],
        "Type": kind,
    })
}

fn lines(values: &[Value]) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    for v in values {
        super::blocks::push_line(&mut out, v)?;
    }
    Ok(out)
}

/// Pings `ping` sends by default (kubo's `--count`).
pub const PINGS_DEFAULT: i64 = 10;
/// Time between two pings of one `ping`, as kubo.
pub const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// One of kubo's `PingResult` lines; `Time` is a Go duration (nanoseconds).
fn ping_line(success: bool, time: std::time::Duration, text: String) -> bytes::Bytes {
    let v = json!({"Success": success, "Time": time.as_nanos() as u64, "Text": text});
    let mut line = serde_json::to_vec(&v).unwrap_or_default();
    line.push(b'\n');
    bytes::Bytes::from(line)
}

/// `POST /api/v0/ping?arg=<peer ID or multiaddr ending in /p2p/<id>>&count=N`: kubo's
/// `{"Success","Time","Text"}` lines as they happen. First `Looking up peer <id>` when we are
/// not connected to it and have no address (then the DHT finds it), `PING <id>.`, one line
/// per round trip ([`PING_INTERVAL`] apart; the first failure ends the pings, with a
/// `Ping error: ..` line), then `Average latency: <ms>ms` if any came back. A failed lookup
/// or dial is a `Ping error` line too. kubo ends a ping with no answer with a "ping failed"
/// `X-Stream-Error` trailer after the same lines; we send no trailers, so the answer ends
/// there (the CLI says "ping failed" itself; a cut connection would lose the lines before).
pub async fn ping(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let target = args.required_arg("peer ID")?;
    let count = match args.get("count").filter(|c| !c.is_empty()) {
        None => PINGS_DEFAULT,
        Some(c) => c
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid count {c:?}")))?,
    };
    if count <= 0 {
        return Err(ApiError::bad_request(format!(
            "ping count must be greater than 0, was {count}"
        )));
    }
    let (peer, addr) = if target.starts_with('/') {
        let (addr, peer) = parse_peer_addr(&target)?;
        (peer, Some(addr))
    } else {
        (parse_peer(&target)?, None)
    };
    let node = state.node()?.clone();
    if peer == node.peer_id() {
        return Err(ApiError::bad_request("can't ping self"));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    tokio::spawn(run_ping(node, peer, addr, count, tx));
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|l| (Ok::<_, std::convert::Infallible>(l), rx))
    });
    Ok(ndjson(axum::body::Body::from_stream(lines)))
}

/// `POST /api/v0/routing/findprovs?arg=<cid>&num-providers=`: one Provider event per peer.
pub async fn routing_findprovs(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let cid = parse_cid(&args.required_arg("key")?)?;
    let limit = args
        .u64("num-providers")?
        .map_or(FIND_PROVIDERS_DEFAULT, |n| n as usize);
    if limit == 0 {
        return Err(ApiError::internal(
            "number of providers must be greater than 0",
        ));
    }
    let found = state.node()?.find_providers(cid, limit).await?;
    let events: Vec<Value> = found
        .iter()
        .map(|(p, a)| peer_event(EVENT_PROVIDER, p, a))
        .collect();
    Ok(ndjson(lines(&events)?))
}

/// `POST /api/v0/routing/findpeer?arg=<peer>`: one FinalPeer event.
pub async fn routing_findpeer(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let peer = parse_peer(&args.required_arg("peerID")?)?;
    let addrs = state
        .node()?
        .find_peer(peer)
        .await?
        .ok_or_else(|| ApiError::internal("routing: not found"))?;
    Ok(ndjson(lines(&[peer_event(
        EVENT_FINAL_PEER,
        &peer,
        &addrs,
    )])?))
}

/// `POST /api/v0/routing/provide?arg=<cid>...`: announces each (which must be local).
pub async fn routing_provide(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let cids = args
        .required_args("key")?
        .iter()
        .map(|s| parse_cid(s))
        .collect::<Result<Vec<_>, _>>()?;
    let node = state.node()?;
    for cid in &cids {
        let repo = state.repo.clone();
        let c = *cid;
        if !super::blocking(move || Ok(repo.blocks().has(&c)?)).await? {
            return Err(ApiError::internal(format!(
                "block {cid} not found locally, cannot provide"
            )));
        }
        node.provide(*cid).await?;
    }
    Ok(ndjson(Vec::new()))
}

/// The lines of one `ping` (see [`ping`]), sent to `tx` until it is done or the client went
/// away.
async fn run_ping(
    node: crate::net::NodeHandle,
    peer: PeerId,
    addr: Option<Multiaddr>,
    count: i64,
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
) {
    let zero = std::time::Duration::ZERO;
    let say = |success: bool, time: std::time::Duration, text: String| {
        let tx = tx.clone();
        async move { tx.send(ping_line(success, time, text)).await.is_ok() }
    };
    let connected = node.peers().await.is_ok_and(|p| p.contains(&peer));
    match addr {
        // kubo adds the address for the dial; a failed dial is the ping's failure.
        Some(addr) if !connected => {
            if let Err(e) = node.connect(addr).await {
                say(false, zero, format!("Ping error: {e}")).await;
                return;
            }
        }
        Some(_) => {}
        None if !connected => {
            if !say(true, zero, format!("Looking up peer {peer}")).await {
                return;
            }
            let found =
                tokio::time::timeout(crate::net::ping::PING_TIMEOUT, node.find_peer(peer)).await;
            let Ok(Ok(Some(addrs))) = found else {
                let why = match found {
                    Err(_) => format!("no answer within {:?}", crate::net::ping::PING_TIMEOUT),
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(_)) => "not found".to_owned(),
                };
                say(
                    false,
                    zero,
                    format!("Ping error: peer lookup failed: {why}"),
                )
                .await;
                return;
            };
            // The DHT's answer is not kept as the peer's addresses: dial one of them here.
            for a in addrs {
                let a = a.with_p2p(peer).unwrap_or_else(|a| a);
                if node.connect(a).await.is_ok() {
                    break;
                }
            }
        }
        None => {}
    }
    if !say(true, zero, format!("PING {peer}.")).await {
        return;
    }
    let mut pinger = match node.pinger(peer) {
        Ok(p) => p,
        Err(e) => {
            say(false, zero, format!("Ping error: {e}")).await;
            return;
        }
    };
    let (mut total, mut answered) = (zero, 0u32);
    for i in 0..count {
        if i > 0 {
            tokio::time::sleep(PING_INTERVAL).await;
        }
        match pinger.ping().await {
            Ok(rtt) => {
                total += rtt;
                answered += 1;
                if !say(true, rtt, String::new()).await {
                    return;
                }
            }
            Err(e) => {
                say(false, zero, format!("Ping error: {e}")).await;
                break;
            }
        }
    }
    if answered > 0 {
        let average_ms = total.as_secs_f64() * 1000.0 / f64::from(answered);
        say(true, zero, format!("Average latency: {average_ms:.2}ms")).await;
    }
}

/// `POST /api/v0/swarm/peering/add?arg=<multiaddr/p2p/id>...`: kubo's `{"ID","Status"}` line
/// per peer; from now on the node stays connected to it ([`crate::net::peering`]).
pub async fn swarm_peering_add(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let mut addrs = Vec::new();
    for a in args.required_args("address")? {
        addrs.push(parse_peer_addr(&a)?.0);
    }
    let node = state.node()?;
    let mut lines = Vec::new();
    for addr in addrs {
        let peer = node.peering_add(addr).await?;
        lines.push(json!({"ID": peer.to_string(), "Status": "success"}));
    }
    Ok(ndjson(self::lines(&lines)?))
}

/// `POST /api/v0/swarm/peering/ls`: `{"Peers":[{"ID","Addrs"}]}`.
pub async fn swarm_peering_ls(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let peers: Vec<Value> = state
        .node()?
        .peering_list()
        .await?
        .into_iter()
        .map(|(p, addrs)| {
            let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            json!({"ID": p.to_string(), "Addrs": addrs})
        })
        .collect();
    Ok(Json(json!({ "Peers": peers })).into_response())
}

/// `POST /api/v0/swarm/peering/rm?arg=<peer>...`: `{"ID","Status"}` lines; the node stops
/// redialing each (its connections stay until they idle out).
pub async fn swarm_peering_rm(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let peers = args
        .required_args("ID")?
        .iter()
        .map(|p| parse_peer(p))
        .collect::<Result<Vec<_>, _>>()?;
    let node = state.node()?;
    let mut lines = Vec::new();
    for peer in peers {
        node.peering_remove(peer).await?;
        lines.push(json!({"ID": peer.to_string(), "Status": "success"}));
    }
    Ok(ndjson(self::lines(&lines)?))
}

/// One `bootstrap` edit at a time in this process (each loads, changes and saves
/// `config.toml`).
static BOOTSTRAP_EDIT: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// What a `bootstrap` command does to the list.
enum BootstrapEdit {
    Add(Vec<String>),
    Rm(Vec<String>),
    RmAll,
}

/// Applies `edit` to the repository's `config.toml` (validated, written atomically) and
/// answers kubo's `{"Peers":[..]}` with the entries added or removed. The daemon dials the
/// list when it next starts, as kubo's does.
async fn edit_bootstrap(state: &ApiState, edit: BootstrapEdit) -> Result<Response, ApiError> {
    let repo = state.repo.path().to_path_buf();
    let changed = super::blocking(move || {
        let _one = BOOTSTRAP_EDIT.lock();
        let bad = |e: crate::config::ConfigError| ApiError::bad_request(e.to_string());
        let mut config = crate::config::Config::load(&repo).map_err(bad)?;
        let changed = match edit {
            BootstrapEdit::Add(peers) => config.bootstrap_add(&peers).map_err(bad)?,
            BootstrapEdit::Rm(peers) => config.bootstrap_rm(&peers).map_err(bad)?,
            BootstrapEdit::RmAll => config.bootstrap_rm_all(),
        };
        config
            .save(&repo)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(changed)
    })
    .await?;
    Ok(Json(json!({ "Peers": changed })).into_response())
}

/// `POST /api/v0/bootstrap[/list]`: `{"Peers":[..]}`, the list the daemon reads at start.
pub async fn bootstrap_list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let repo = state.repo.path().to_path_buf();
    let config = super::blocking(move || {
        crate::config::Config::load_with_env(&repo).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(json!({ "Peers": config.bootstrap })).into_response())
}

/// `POST /api/v0/bootstrap/add?arg=<multiaddr/p2p/id>...[&default=true]`: the entries added.
pub async fn bootstrap_add(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let mut peers = args.all("arg");
    if args.bool("default", false)? {
        peers.extend(
            crate::config::KUBO_DEFAULT_BOOTSTRAP
                .iter()
                .map(|s| s.to_string()),
        );
    }
    if peers.is_empty() {
        return Err(ApiError::bad_request("no bootstrap peers to add"));
    }
    edit_bootstrap(&state, BootstrapEdit::Add(peers)).await
}

/// `POST /api/v0/bootstrap/add/default`: kubo's default public peers.
pub async fn bootstrap_add_default(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let peers = crate::config::KUBO_DEFAULT_BOOTSTRAP
        .iter()
        .map(|s| s.to_string())
        .collect();
    edit_bootstrap(&state, BootstrapEdit::Add(peers)).await
}

/// `POST /api/v0/bootstrap/rm?arg=<peer>...[&all=true]`: `/p2p/<id>` removes every entry of
/// the peer, a whole address that entry; the entries removed.
pub async fn bootstrap_rm(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    if args.bool("all", false)? {
        return edit_bootstrap(&state, BootstrapEdit::RmAll).await;
    }
    let peers = args.all("arg");
    if peers.is_empty() {
        return Err(ApiError::bad_request("no bootstrap peers to remove"));
    }
    edit_bootstrap(&state, BootstrapEdit::Rm(peers)).await
}

/// `POST /api/v0/bootstrap/rm/all`: empties the list.
pub async fn bootstrap_rm_all(State(state): State<ApiState>) -> Result<Response, ApiError> {
    edit_bootstrap(&state, BootstrapEdit::RmAll).await
}

/// `POST /api/v0/bitswap/ledger?arg=<peer>`: kubo's receipt, `{"Peer","Value","Sent","Recv",
/// "Exchanged"}` (bytes of blocks each way, blocks both ways, sent over received plus one).
pub async fn bitswap_ledger(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let peer = parse_peer(&args.required_arg("peer")?)?;
    let r = state.node()?.bitswap_ledger(peer).await?;
    Ok(Json(json!({
        "Peer": peer.to_string(),
        "Value": r.value(),
        "Sent": r.sent,
        "Recv": r.received,
        "Exchanged": r.exchanged,
    }))
    .into_response())
}

/// `POST /api/v0/bitswap/stat`: kubo's counters, wantlist and peers.
pub async fn bitswap_stat(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let s = state.node()?.bitswap_stat().await?;
    let wantlist: Vec<Value> = s
        .wantlist
        .iter()
        .map(|c| json!({"/": c.to_string()}))
        .collect();
    let peers: Vec<String> = s.peers.iter().map(|p| p.to_string()).collect();
    Ok(Json(json!({
        "ProvideBufLen": 0,
        "Wantlist": wantlist,
        "Peers": peers,
        "BlocksReceived": s.blocks_received,
        "DataReceived": s.data_received,
        "DupBlksReceived": s.dup_blks_received,
        "DupDataReceived": s.dup_data_received,
        "BlocksSent": s.blocks_sent,
        "DataSent": s.data_sent,
        "MessagesReceived": s.messages_received,
    }))
    .into_response())
}

/// `POST /api/v0/bitswap/wantlist[?peer=<peer>]`: `{"Keys":[{"/":cid}]}`.
pub async fn bitswap_wantlist(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let peer = args
        .get("peer")
        .filter(|p| !p.is_empty())
        .map(parse_peer)
        .transpose()?;
    let keys: Vec<Value> = state
        .node()?
        .wantlist(peer)
        .await?
        .iter()
        .map(|c| json!({"/": c.to_string()}))
        .collect();
    Ok(Json(json!({ "Keys": keys })).into_response())
}

/// Selections (all, one peer, one protocol) whose previous `stats/bw` reading is kept for
/// rates.
pub const BW_SAMPLES_MAX: usize = 64;
/// Shortest `stats/bw?poll=true` interval.
pub const BW_POLL_INTERVAL_MS_MIN: u64 = 10;

/// The previous `stats/bw` reading of each selection, for rates.
#[derive(Debug, Default)]
pub struct BwSample {
    last: std::collections::HashMap<BwSelect, (Instant, BandwidthTotals)>,
}

/// What `stats/bw` reports on: everything, one peer (`peer=`) or one protocol (`proto=`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BwSelect {
    All,
    Peer(PeerId),
    Protocol(String),
}

impl BwSelect {
    fn read(&self, node: &crate::net::NodeHandle) -> BandwidthTotals {
        match self {
            BwSelect::All => node.bandwidth(),
            BwSelect::Peer(p) => node.bandwidth_of_peer(p),
            BwSelect::Protocol(p) => node.bandwidth_of_protocol(p),
        }
    }
}

/// kubo's `stats/bw` object for a reading and the rates since the previous one.
fn bw_json(now: BandwidthTotals, rates: (f64, f64)) -> Value {
    json!({
        "TotalIn": now.total_in,
        "TotalOut": now.total_out,
        "RateIn": rates.0,
        "RateOut": rates.1,
    })
}

/// `POST /api/v0/stats/bw[?peer=<id>|proto=<protocol>][&poll=true&interval=1s]`:
/// `{"TotalIn","TotalOut","RateIn","RateOut"}` of every protocol on every connection, of one
/// peer, or of one protocol (as kubo: zeros for one never seen, and not both at once).
/// Rates cover the time since the previous call with the same selection; with `poll`, one
/// object per `interval` (a Go duration, default `1s`) until the client goes away.
pub async fn stats_bw(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let peer = args.get("peer").filter(|p| !p.is_empty());
    let proto = args.get("proto").filter(|p| !p.is_empty());
    let select = match (peer, proto) {
        (Some(_), Some(_)) => {
            return Err(ApiError::internal(
                "both peer and proto were specified, must specify only one",
            ))
        }
        (Some(p), None) => BwSelect::Peer(parse_peer(p)?),
        (None, Some(p)) => BwSelect::Protocol(p.to_owned()),
        (None, None) => BwSelect::All,
    };
    let node = state.node()?.clone();
    if args.bool("poll", false)? {
        let text = args.string("interval", "1s");
        let interval_ms = crate::cluster_api::json::parse_go_duration_ms(&text)
            .filter(|ms| *ms >= BW_POLL_INTERVAL_MS_MIN)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid interval {text:?}: a Go duration of at least {BW_POLL_INTERVAL_MS_MIN}ms"
                ))
            })?;
        let interval = std::time::Duration::from_millis(interval_ms);
        let first = (Instant::now(), select.read(&node));
        let lines = futures::stream::unfold((first, true), move |((at, prev), first)| {
            let (node, select) = (node.clone(), select.clone());
            async move {
                if !first {
                    tokio::time::sleep(interval).await;
                }
                let (now_at, now) = (Instant::now(), select.read(&node));
                let rates = bandwidth::rates(prev, now, (now_at - at).as_secs_f64());
                let mut line = serde_json::to_vec(&bw_json(now, rates)).unwrap_or_default();
                line.push(b'\n');
                Some((
                    Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line)),
                    ((now_at, now), false),
                ))
            }
        });
        return Ok(super::blocks::ndjson(axum::body::Body::from_stream(lines)));
    }
    let now = select.read(&node);
    let at = Instant::now();
    let rates = {
        let mut samples = state.bw.lock();
        let rates = match samples.last.get(&select) {
            Some((prev_at, prev)) => bandwidth::rates(*prev, now, (at - *prev_at).as_secs_f64()),
            None => (0.0, 0.0),
        };
        if samples.last.len() >= BW_SAMPLES_MAX && !samples.last.contains_key(&select) {
            samples.last.clear();
        }
        samples.last.insert(select, (at, now));
        rates
    };
    Ok(Json(bw_json(now, rates)).into_response())
}

/// `POST /api/v0/swarm/addrs/local[?id=true]`: `{"Strings":[addr]}`, this node's listen
/// addresses (with `/p2p/<id>` when `id`).
pub async fn swarm_addrs_local(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let args = Args::parse(q.as_deref())?;
    let with_id = args.bool("id", false)?;
    let node = state.node()?;
    let me = node.peer_id();
    let addrs: Vec<String> = node
        .listen_addrs()
        .await?
        .into_iter()
        .map(|a| {
            if with_id {
                format!("{a}/p2p/{me}")
            } else {
                a.to_string()
            }
        })
        .collect();
    Ok(Json(json!({ "Strings": addrs })).into_response())
}

/// `POST /api/v0/swarm/addrs`: `{"Addrs":{peer:[addr]}}`, the addresses each connected peer
/// announced (identify).
pub async fn swarm_addrs(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let node = state.node()?;
    let mut addrs = serde_json::Map::new();
    for peer in node.peers().await? {
        let info = node.peer_info(peer).await?.unwrap_or_default();
        let list: Vec<Value> = info
            .listen_addrs
            .iter()
            .map(|a| Value::String(a.to_string()))
            .collect();
        addrs.insert(peer.to_string(), Value::Array(list));
    }
    Ok(Json(json!({ "Addrs": addrs })).into_response())
}

/// `POST /api/v0/shutdown`: stops the daemon as SIGTERM does (in-flight answers finish, the
/// `api` file is removed); the answer comes before the servers close.
pub async fn shutdown(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let token = state
        .shutdown
        .as_ref()
        .ok_or_else(|| ApiError::internal("this node cannot be shut down through its API"))?;
    token.cancel();
    Ok(().into_response())
}
