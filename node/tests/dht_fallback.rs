//! A fetch that succeeds only through the bitswap session's DHT fallback.
//!
//! Topology: fetcher F — DHT server D — holder H, where H runs its DHT in client mode. H is
//! therefore in nobody's routing table: no DHT lookup can hand F a route to H as a "closer
//! peer", and kad never pre-connects F to H. H announces its blocks with the sweeping
//! reprovider (batched ADD_PROVIDER carrying H's listen addresses) to D, the only DHT server
//! it knows. F's session first asks its connected peers (D: nothing), then asks the DHT for
//! providers, learns H with its addresses from D's record, dials H and gets the blocks there.
//!
//! The path is asserted, not only the bytes: F was not connected to H before the fetch; the
//! session's provider search ran (its `providers found` tracing event, captured by a
//! subscriber scoped to this test's single-threaded runtime); H served the blocks and D none.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipfs_kit::net::provide::{Reprovider, ReproviderConfig};
use ipfs_kit::net::{BehaviourConfig, KadMode, Keypair, Node, NodeConfig};
use ipfs_kit::repo::Repo;
use ipfs_kit::unixfs::ImportOptions;
use ipfs_kit_blockstore::MemoryBlockstore;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::Layer;

/// Records the message and fields of every event (any level).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
}

async fn start(dir: &std::path::Path, name: &str, mode: KadMode) -> (Node, Repo) {
    let repo = Repo::with_store(&dir.join(name), Arc::new(MemoryBlockstore::new())).unwrap();
    let mut c = NodeConfig::new(Keypair::generate_ed25519()).with_repo(repo.clone());
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c.behaviour = BehaviourConfig {
        kad_mode: mode,
        kad_bootstrap_interval: None,
        ..BehaviourConfig::default()
    };
    c.idle_connection_timeout = Duration::from_secs(600);
    c.fetch_stall_timeout = Duration::from_secs(20);
    (Node::start(c).await.unwrap(), repo)
}

/// Waits until identify ran on `a`'s connection to `b` (so kad knows whether `b` serves it).
async fn identified(a: &Node, b: &Node) {
    for _ in 0..400 {
        let info = a.handle().peer_info(b.handle().peer_id()).await.unwrap();
        if info.is_some_and(|i| i.agent_version.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("identify did not run");
}

// One thread: the capturing subscriber is this thread's default, and every node task runs here.
#[tokio::test(flavor = "current_thread")]
async fn fetch_finds_an_unconnected_holder_through_the_dht_only() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone().with_filter(
        tracing_subscriber::filter::Targets::new().with_target("ipfs_kit", tracing::Level::DEBUG),
    ));
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let (d, _) = start(dir.path(), "dht", KadMode::Server).await;
    let (h, h_repo) = start(dir.path(), "holder", KadMode::Client).await;
    let d_addr = d.handle().listen_addrs().await.unwrap()[0].clone();
    h.handle().connect(d_addr.clone()).await.unwrap();
    identified(&d, &h).await;
    identified(&h, &d).await;

    // H imports a 4-chunk file and announces every block through the sweeping reprovider.
    let data: Vec<u8> = (0..(3 * 256 * 1024 + 17))
        .map(|i| (i % 253) as u8)
        .collect();
    let root = {
        let repo = h_repo.clone();
        let data = data.clone();
        tokio::task::spawn_blocking(move || {
            repo.add_file(std::io::Cursor::new(data), &ImportOptions::default())
                .unwrap()
        })
        .await
        .unwrap()
    };
    let reprovider = Reprovider::for_repo(
        h.handle(),
        ReproviderConfig::default(),
        h_repo.clone(),
        ipfs_kit::config::ProvideStrategy::All,
    );
    let report = reprovider.sweep_all().await.unwrap();
    assert_eq!(report.keys, 5, "root and 4 leaves: {report:?}");
    assert_eq!(report.send_failures, 0, "{report:?}");
    assert_eq!(
        report.records_sent, 5,
        "every record to D, the only server: {report:?}"
    );

    // F joins afterwards (H's lookup would otherwise have met F through D and sent it the
    // records directly), knowing D only.
    let (f, f_repo) = start(dir.path(), "fetcher", KadMode::Server).await;
    f.handle().connect(d_addr).await.unwrap();
    identified(&d, &f).await;
    identified(&f, &d).await;

    // Before: F knows D only; H serves no DHT, so no lookup routes F to it.
    let h_id = h.handle().peer_id();
    assert!(!f.handle().peers().await.unwrap().contains(&h_id));
    assert!(!f_repo.blocks().has(&root).unwrap());

    let stats = tokio::time::timeout(Duration::from_secs(60), f.handle().fetch_dag(root))
        .await
        .expect("fetch timed out")
        .unwrap();
    drop(stats);
    let got = {
        let repo = f_repo.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            ipfs_kit::unixfs::export::cat(repo.blocks().as_ref(), &root, 0, None, &mut out)
                .unwrap();
            out
        })
        .await
        .unwrap()
    };
    assert_eq!(got, data);

    // The path: the session's provider search found H, F dialed it, H served the blocks.
    let events = capture.0.lock().unwrap().clone();
    let root_s = root.to_string();
    assert!(
        events
            .iter()
            .any(|e| e.contains("providers found") && e.contains(&root_s)),
        "no session provider search for the root in {} events",
        events.len()
    );
    assert!(f.handle().peers().await.unwrap().contains(&h_id));
    let (hs, ds) = (
        h.handle().bitswap_stat().await.unwrap(),
        d.handle().bitswap_stat().await.unwrap(),
    );
    assert_eq!(hs.blocks_sent, 5, "H served every block");
    assert_eq!(ds.blocks_sent, 0, "D holds nothing");
    for n in [f, h, d] {
        n.shutdown().await;
    }
}
