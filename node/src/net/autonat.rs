//! AutoNAT v1 (`/libp2p/autonat/1.0.0`): is this node reachable from the outside?
//!
//! Every node runs the client: it asks connected peers to dial it back at its listen and
//! observed addresses and learns `Public` or `Private`. Workers and masters also serve
//! dial-backs, rate limited as kubo's AutoNAT service is; leechers refuse every request
//! (a dial-back budget of zero).
//!
//! The status drives Kademlia's mode when the node runs [`super::KadMode::ByReachability`]
//! (kubo's `Routing.Type = dht`): server once `Public`, client while `Private` or not yet
//! known. [`kad_server_for`] is that decision, pure.
//!
//! `only_global_ips` (kubo's behaviour, default on) ignores peers seen at private addresses,
//! both as servers to ask and as clients to serve: loopback test networks turn it off.

use std::time::Duration;

use libp2p::autonat;
use libp2p::PeerId;

/// Dial-backs served per [`AUTONAT_THROTTLE_PERIOD`], all clients together (libp2p's and
/// kubo's `AutoNAT.Throttle.GlobalLimit` default, 30).
pub const AUTONAT_DIAL_BACKS_GLOBAL_MAX: usize = 30;

/// Dial-backs served per [`AUTONAT_THROTTLE_PERIOD`] to one client (libp2p's and kubo's
/// `AutoNAT.Throttle.PeerLimit`, 3).
pub const AUTONAT_DIAL_BACKS_PER_PEER_MAX: usize = 3;

/// The throttle window of the two limits above: kubo's `AutoNAT.Throttle.Interval` (1 min).
/// libp2p's default window is 1 s, which would let one node dial 30 addresses a second on
/// strangers' behalf.
pub const AUTONAT_THROTTLE_PERIOD: Duration = Duration::from_secs(60);

/// Addresses of one client tried per dial-back request (libp2p's default).
pub const AUTONAT_DIAL_BACK_ADDRS_MAX: usize = 16;

/// How long one probe or dial-back may take (libp2p's default).
pub const AUTONAT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the AutoNAT behaviour runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutonatConfig {
    /// Serve dial-backs to other peers (workers, masters).
    pub serve: bool,
    /// Ignore peers seen at non-global addresses (kubo: on; loopback tests: off).
    pub only_global_ips: bool,
    /// Delay before the first probe (libp2p: 15 s).
    pub boot_delay: Duration,
    /// Time between probes while the status is unknown or not yet confident (libp2p: 90 s).
    pub retry_interval: Duration,
    /// Time between probes once confident (libp2p: 15 min).
    pub refresh_interval: Duration,
    /// Minimum time before the same peer is asked again (libp2p: 90 s).
    pub server_reuse_interval: Duration,
}

impl Default for AutonatConfig {
    fn default() -> Self {
        let d = autonat::Config::default();
        Self {
            serve: true,
            only_global_ips: true,
            boot_delay: d.boot_delay,
            retry_interval: d.retry_interval,
            refresh_interval: d.refresh_interval,
            server_reuse_interval: d.throttle_server_period,
        }
    }
}

impl AutonatConfig {
    /// Probing every second from the start, from any address: in-process test networks.
    pub fn for_tests() -> Self {
        Self {
            only_global_ips: false,
            boot_delay: Duration::from_millis(200),
            retry_interval: Duration::from_secs(1),
            refresh_interval: Duration::from_secs(5),
            server_reuse_interval: Duration::from_millis(500),
            ..Self::default()
        }
    }

    /// The behaviour for `peer_id`.
    pub fn behaviour(&self, peer_id: PeerId) -> autonat::Behaviour {
        autonat::Behaviour::new(
            peer_id,
            autonat::Config {
                timeout: AUTONAT_TIMEOUT,
                boot_delay: self.boot_delay,
                refresh_interval: self.refresh_interval,
                retry_interval: self.retry_interval,
                throttle_server_period: self.server_reuse_interval,
                max_peer_addresses: AUTONAT_DIAL_BACK_ADDRS_MAX,
                // A zero budget refuses every request: the node only asks.
                throttle_clients_global_max: if self.serve {
                    AUTONAT_DIAL_BACKS_GLOBAL_MAX
                } else {
                    0
                },
                throttle_clients_peer_max: AUTONAT_DIAL_BACKS_PER_PEER_MAX,
                throttle_clients_period: AUTONAT_THROTTLE_PERIOD,
                only_global_ips: self.only_global_ips,
                ..autonat::Config::default()
            },
        )
    }
}

/// What AutoNAT concluded about this node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reachability {
    /// No probe has concluded yet.
    #[default]
    Unknown,
    /// Peers could dial us back.
    Public,
    /// Peers could not dial us back (behind NAT or a firewall).
    Private,
}

impl Reachability {
    /// The gauge value exported as `ipfs_kit_autonat_status`: 0 unknown, 1 public, 2 private.
    pub fn as_gauge(self) -> u64 {
        match self {
            Reachability::Unknown => 0,
            Reachability::Public => 1,
            Reachability::Private => 2,
        }
    }

    /// The lowercase name (`unknown`, `public`, `private`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

impl From<&autonat::NatStatus> for Reachability {
    fn from(s: &autonat::NatStatus) -> Self {
        match s {
            autonat::NatStatus::Public(_) => Reachability::Public,
            autonat::NatStatus::Private => Reachability::Private,
            autonat::NatStatus::Unknown => Reachability::Unknown,
        }
    }
}

/// The latest [`Reachability`], shared between the swarm task (writer) and node handles
/// (readers: metrics, tests).
#[derive(Debug, Default)]
pub struct ReachabilityCell(std::sync::atomic::AtomicU8);

impl ReachabilityCell {
    pub fn get(&self) -> Reachability {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Reachability::Public,
            2 => Reachability::Private,
            _ => Reachability::Unknown,
        }
    }

    pub fn set(&self, r: Reachability) {
        let v = u8::try_from(r.as_gauge()).unwrap_or(0);
        self.0.store(v, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether a node following its reachability serves the DHT: only once peers could dial it.
pub fn kad_server_for(reachability: Reachability) -> bool {
    reachability == Reachability::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_nodes_serve_the_dht() {
        assert!(kad_server_for(Reachability::Public));
        assert!(!kad_server_for(Reachability::Private));
        assert!(!kad_server_for(Reachability::Unknown));
        assert_eq!(Reachability::Public.as_gauge(), 1);
        assert_eq!(Reachability::Private.as_str(), "private");
        let cell = ReachabilityCell::default();
        assert_eq!(cell.get(), Reachability::Unknown);
        for r in [
            Reachability::Public,
            Reachability::Private,
            Reachability::Unknown,
        ] {
            cell.set(r);
            assert_eq!(cell.get(), r);
        }
    }

    #[test]
    fn leechers_serve_no_dial_backs_and_defaults_are_kubos() {
        let d = AutonatConfig::default();
        assert!(d.only_global_ips && d.serve);
        assert!(!AutonatConfig::for_tests().only_global_ips);
        let leecher = AutonatConfig {
            serve: false,
            ..AutonatConfig::default()
        };
        // Builds (the zero budget is accepted).
        let _ = leecher.behaviour(PeerId::random());
    }
}
