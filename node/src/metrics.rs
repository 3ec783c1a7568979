//! Prometheus metrics at `/debug/metrics/prometheus` on the API server (kubo's path), in the
//! OpenMetrics text format of `prometheus-client`.
//!
//! Two kinds of series:
//! - counters the HTTP servers update as requests finish
//!   (`ipfs_kit_http_requests_total{server,command,status}`), kept in [`Metrics`];
//! - a snapshot taken at each scrape from their owners, so nothing is counted twice: the
//!   blockstore (`ipfs_kit_blockstore_blocks`, `_data_bytes`, `_disk_bytes`), the swarm
//!   (`ipfs_kit_swarm_peers`: open connections by peer) and bitswap (blocks and bytes sent and
//!   received, duplicates, messages, wantlist length, bitswap peers, penalties) and the
//!   reprovider (`ipfs_kit_provide_*`: keys, regions, lookups, records sent and failed, the
//!   last sweep's start, duration and size, the next sweep's due time).

use crate::api::{blocking, ApiError, ApiState};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Where the API serves the metrics (kubo's path).
pub const METRICS_PATH: &str = "/debug/metrics/prometheus";

/// Labels of one HTTP request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `api` or `gateway`.
    pub server: &'static str,
    /// The API route (`/api/v0/add`), or `gateway`; never the raw URL, so the label set is
    /// bounded.
    pub command: String,
    pub status: u16,
}

/// The counters kept between scrapes.
#[derive(Debug, Default)]
pub struct Metrics {
    http_requests: Family<HttpLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one finished request.
    pub fn http_request(&self, server: &'static str, command: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                server,
                command: command.to_owned(),
                status,
            })
            .inc();
    }

    /// Requests counted so far for `server`/`command`/`status` (tests).
    pub fn http_count(&self, server: &'static str, command: &str, status: u16) -> u64 {
        self.http_requests
            .get_or_create(&HttpLabels {
                server,
                command: command.to_owned(),
                status,
            })
            .get()
    }
}

/// Values read from their owners at one scrape.
#[derive(Debug, Default)]
struct Snapshot {
    store: ipfs_kit_blockstore::StoreStat,
    peers: Option<u64>,
    bitswap: Option<crate::net::BitswapStat>,
    /// Bytes on every connection, all protocols, and AutoNAT's verdict.
    network: Option<(
        crate::net::bandwidth::BandwidthTotals,
        crate::net::autonat::Reachability,
    )>,
    provide: Option<crate::net::provide::ReprovideStat>,
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    let m = e.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let g = ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
    let m = e.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = &self.store;
        gauge(
            &mut e,
            "ipfs_kit_blockstore_blocks",
            "Blocks in the blockstore",
            s.blocks,
        )?;
        gauge(
            &mut e,
            "ipfs_kit_blockstore_data_bytes",
            "Bytes of block data in the blockstore",
            s.data_bytes,
        )?;
        gauge(
            &mut e,
            "ipfs_kit_blockstore_disk_bytes",
            "Bytes the blockstore occupies on disk",
            s.disk_bytes,
        )?;
        if let Some(p) = self.peers {
            gauge(
                &mut e,
                "ipfs_kit_swarm_peers",
                "Peers with at least one open connection",
                p,
            )?;
        }
        if let Some(b) = &self.bitswap {
            counter(
                &mut e,
                "ipfs_kit_bitswap_blocks_received",
                "Blocks received by bitswap",
                b.blocks_received,
            )?;
            counter(
                &mut e,
                "ipfs_kit_bitswap_data_received_bytes",
                "Block bytes received by bitswap",
                b.data_received,
            )?;
            counter(
                &mut e,
                "ipfs_kit_bitswap_blocks_sent",
                "Blocks sent by bitswap",
                b.blocks_sent,
            )?;
            counter(
                &mut e,
                "ipfs_kit_bitswap_data_sent_bytes",
                "Block bytes sent by bitswap",
                b.data_sent,
            )?;
            counter(
                &mut e,
                "ipfs_kit_bitswap_dup_blocks_received",
                "Blocks received that no session wanted",
                b.dup_blks_received,
            )?;
            counter(
                &mut e,
                "ipfs_kit_bitswap_messages_received",
                "Bitswap messages received",
                b.messages_received,
            )?;
            counter(
                &mut e,
                "ipfs_kit_bitswap_penalties",
                "Penalties given to misbehaving bitswap peers",
                b.penalties,
            )?;
            gauge(
                &mut e,
                "ipfs_kit_bitswap_wantlist_length",
                "CIDs our sessions want now",
                b.wantlist.len() as u64,
            )?;
            gauge(
                &mut e,
                "ipfs_kit_bitswap_peers",
                "Connected peers that speak bitswap",
                b.peers.len() as u64,
            )?;
        }
        if let Some((bw, reachability)) = &self.network {
            encode_network(&mut e, bw, *reachability)?;
        }
        if let Some(p) = &self.provide {
            encode_provide(&mut e, p)?;
        }
        Ok(())
    }
}

fn encode_provide(
    e: &mut DescriptorEncoder<'_>,
    p: &crate::net::provide::ReprovideStat,
) -> std::fmt::Result {
    let secs = |nanos: u64| nanos as f64 / 1e9;
    gauge(
        e,
        "ipfs_kit_provide_keys",
        "Keys in the provided set",
        p.keys_provided as u64,
    )?;
    counter(
        e,
        "ipfs_kit_provide_keys_announced",
        "Keys announced to the DHT (once per announcement)",
        p.keys_announced,
    )?;
    counter(
        e,
        "ipfs_kit_provide_regions_swept",
        "Keyspace regions announced",
        p.regions_swept,
    )?;
    counter(
        e,
        "ipfs_kit_provide_lookups",
        "DHT lookups made by the reprovider",
        p.lookups,
    )?;
    counter(
        e,
        "ipfs_kit_provide_records_sent",
        "ADD_PROVIDER records written to peers",
        p.records_sent,
    )?;
    counter(
        e,
        "ipfs_kit_provide_records_failed",
        "ADD_PROVIDER records in batches that were not delivered",
        p.records_failed,
    )?;
    counter(
        e,
        "ipfs_kit_provide_sweeps",
        "Complete sweeps of the provided set",
        p.cycles,
    )?;
    gauge(
        e,
        "ipfs_kit_provide_network_size_estimate",
        "The reprovider's network size estimate",
        p.network_size as u64,
    )?;
    float_gauge(
        e,
        "ipfs_kit_provide_last_sweep_start_timestamp_seconds",
        "Unix time the last complete sweep started (0: none yet)",
        p.last_sweep_started_unix_ms as f64 / 1e3,
    )?;
    float_gauge(
        e,
        "ipfs_kit_provide_last_sweep_duration_seconds",
        "Time the last complete sweep spent announcing",
        secs(p.last_sweep_nanos),
    )?;
    gauge(
        e,
        "ipfs_kit_provide_last_sweep_keys",
        "Keys of the last complete sweep",
        p.last_sweep_keys,
    )?;
    float_gauge(
        e,
        "ipfs_kit_provide_next_sweep_due_timestamp_seconds",
        "Unix time the next scheduled announcement is due (0: not scheduled)",
        p.next_sweep_due_unix_ms as f64 / 1e3,
    )
}

fn float_gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    let m = e.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

/// Transport totals (every protocol, as `stats/bw`) and the AutoNAT status.
fn encode_network(
    e: &mut DescriptorEncoder<'_>,
    bw: &crate::net::bandwidth::BandwidthTotals,
    reachability: crate::net::autonat::Reachability,
) -> std::fmt::Result {
    counter(
        e,
        "ipfs_kit_swarm_received_bytes",
        "Bytes received on every stream of every connection, all protocols",
        bw.total_in,
    )?;
    counter(
        e,
        "ipfs_kit_swarm_sent_bytes",
        "Bytes sent on every stream of every connection, all protocols",
        bw.total_out,
    )?;
    gauge(
        e,
        "ipfs_kit_autonat_status",
        "Reachability found by AutoNAT: 0 unknown, 1 public, 2 private",
        reachability.as_gauge(),
    )
}

/// Renders every metric in the Prometheus text format.
pub async fn render(state: &ApiState) -> Result<String, ApiError> {
    let repo = state.repo.clone();
    let store = blocking(move || Ok(repo.blocks().stat()?)).await?;
    let mut snap = Snapshot {
        store,
        ..Snapshot::default()
    };
    if let Some(node) = &state.node {
        snap.peers = Some(node.peers().await?.len() as u64);
        snap.bitswap = Some(node.bitswap_stat().await?);
        snap.network = Some((node.bandwidth(), node.reachability()));
    }
    snap.provide = state.reprovider.as_ref().map(|r| r.stat());
    let mut registry = Registry::default();
    registry.register(
        "ipfs_kit_http_requests",
        "HTTP requests answered, by server, command and status",
        state.metrics.http_requests.clone(),
    );
    registry.register_collector(Box::new(snap));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).map_err(ApiError::internal)?;
    Ok(out)
}

/// `GET|POST /debug/metrics/prometheus`.
pub async fn serve(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let text = render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
