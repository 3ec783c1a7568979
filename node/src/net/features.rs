//! The config's network features applied to a [`NodeConfig`]: the DHT mode by role and
//! reachability, AutoNAT's serving and address policy, the relay client and its static
//! relays, the relay service, mDNS, the DNS resolvers, the peered peers.

use super::{KadMode, NodeConfig};
use crate::config::{DhtMode, NetworkSettings, Role};

/// Kademlia's mode for `routing.mode` resolved against the role.
pub fn kad_mode(mode: DhtMode) -> KadMode {
    match mode {
        DhtMode::Client => KadMode::Client,
        DhtMode::ByReachability => KadMode::ByReachability,
        DhtMode::Server => KadMode::Server,
    }
}

/// Sets `config`'s network features from the settings of a node of `role`. Workers and
/// masters serve AutoNAT dial-backs; leechers only ask.
pub fn apply(config: &mut NodeConfig, network: &NetworkSettings, role: Role) {
    config.relay_client = network.relay_client;
    config.relays = network.relays.clone();
    config.dns_resolvers = network.dns_resolvers.clone();
    config.peering = network.peering.clone();
    config.behaviour.relay_server = network.relay_service;
    config.behaviour.mdns = network.mdns;
    config.behaviour.lan_dht = network.lan_dht;
    config.behaviour.autonat.only_global_ips = network.autonat_only_global_ips;
    config.behaviour.autonat.serve = role != Role::Leecher;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;

    #[test]
    fn roles_and_keys_reach_the_node_config() {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        for (role, relay_service, serve, kad) in [
            (Role::Leecher, false, false, KadMode::Client),
            (Role::Worker, false, true, KadMode::ByReachability),
            (Role::Master, true, true, KadMode::ByReachability),
        ] {
            let settings = Config::for_role(role).resolve().unwrap();
            let mut c = NodeConfig::new(keypair.clone());
            apply(&mut c, &settings.network, role);
            assert_eq!(c.behaviour.relay_server, relay_service, "{role:?}");
            assert_eq!(c.behaviour.autonat.serve, serve, "{role:?}");
            assert!(c.behaviour.autonat.only_global_ips);
            assert!(c.relay_client && c.relays.is_empty() && !c.behaviour.mdns);
            assert!(c.behaviour.lan_dht, "kubo runs its LAN DHT by default");
            assert_eq!(kad_mode(settings.dht_mode), kad);
        }
        let relay = format!("/ip4/10.0.0.1/tcp/4001/p2p/{}", libp2p::PeerId::random());
        let config = Config::default()
            .with_text_value("swarm.relays", &format!("[\"{relay}\"]"), false)
            .unwrap()
            .with_text_value("discovery.mdns", "true", false)
            .unwrap()
            .with_text_value("swarm.autonat_only_global_ips", "false", false)
            .unwrap()
            .with_text_value("swarm.relay_client", "false", false)
            .unwrap()
            .with_text_value("routing.lan_dht", "false", false)
            .unwrap();
        let settings = config.resolve().unwrap();
        let mut c = NodeConfig::new(keypair);
        apply(&mut c, &settings.network, Role::Worker);
        assert_eq!(c.relays, vec![relay.parse().unwrap()]);
        assert!(c.behaviour.mdns && !c.behaviour.autonat.only_global_ips && !c.relay_client);
        assert!(!c.behaviour.lan_dht);
    }
}
