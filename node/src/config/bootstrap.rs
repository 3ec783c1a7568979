//! The `bootstrap` list as kubo's `ipfs bootstrap` edits it: add peers (or kubo's default
//! public ones), remove peers (or all). The list takes effect when the daemon next starts.

use super::{Config, ConfigError};
use multiaddr::{Multiaddr, PeerId, Protocol};

/// kubo's default bootstrap peers (kubo's `config.DefaultBootstrapAddresses`): the public
/// Amino DHT's entry points. `/dnsaddr` ones are resolved when dialed (`dns.resolvers`).
pub const KUBO_DEFAULT_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/dnsaddr/va1.bootstrap.libp2p.io/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
    "/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// A bootstrap entry parsed, and the peer it names.
fn parse(text: &str) -> Result<(Multiaddr, PeerId), ConfigError> {
    let addr: Multiaddr =
        text.trim()
            .parse()
            .map_err(|e: multiaddr::Error| ConfigError::BadMultiaddr {
                key: "bootstrap".into(),
                value: text.to_owned(),
                reason: e.to_string(),
            })?;
    let peer = addr
        .iter()
        .find_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .ok_or_else(|| ConfigError::BootstrapWithoutPeerId(text.to_owned()))?;
    Ok((addr, peer))
}

impl Config {
    /// Adds each of `peers` (multiaddrs naming a peer) not already listed; returns those added,
    /// as written. Nothing changes if any is invalid.
    pub fn bootstrap_add(&mut self, peers: &[String]) -> Result<Vec<String>, ConfigError> {
        let mut parsed = Vec::with_capacity(peers.len());
        for p in peers {
            parsed.push(parse(p)?.0);
        }
        let mut added = Vec::new();
        for addr in parsed {
            let text = addr.to_string();
            let listed = self
                .bootstrap
                .iter()
                .any(|b| b.parse::<Multiaddr>().is_ok_and(|b| b == addr));
            if !listed {
                self.bootstrap.push(text.clone());
                added.push(text);
            }
        }
        self.resolve()?;
        Ok(added)
    }

    /// Removes entries, as kubo: an address naming only a peer (`/p2p/<id>`) removes every
    /// entry of that peer, a full address only the equal entry. Returns the entries removed.
    pub fn bootstrap_rm(&mut self, peers: &[String]) -> Result<Vec<String>, ConfigError> {
        let mut targets = Vec::with_capacity(peers.len());
        for p in peers {
            let (addr, peer) = parse(p)?;
            let peer_only = addr.iter().count() == 1;
            targets.push((addr, peer, peer_only));
        }
        let mut removed = Vec::new();
        self.bootstrap.retain(|entry| {
            let Ok((addr, peer)) = parse(entry) else {
                return true;
            };
            let hit = targets
                .iter()
                .any(|(t, p, peer_only)| if *peer_only { *p == peer } else { *t == addr });
            if hit {
                removed.push(entry.clone());
            }
            !hit
        });
        Ok(removed)
    }

    /// Empties the list; returns what it held.
    pub fn bootstrap_rm_all(&mut self) -> Vec<String> {
        std::mem::take(&mut self.bootstrap)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PEER: &str = "12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8";

    #[test]
    fn the_defaults_parse_and_name_peers() {
        let mut c = Config::default();
        let defaults: Vec<String> = KUBO_DEFAULT_BOOTSTRAP
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(c.bootstrap_add(&defaults).unwrap(), defaults);
        // Adding them again adds nothing.
        assert!(c.bootstrap_add(&defaults).unwrap().is_empty());
        assert_eq!(
            c.resolve().unwrap().bootstrap.len(),
            KUBO_DEFAULT_BOOTSTRAP.len()
        );
    }

    #[test]
    fn add_validates_everything_first() {
        let mut c = Config::default();
        let good = format!("/ip4/10.0.0.1/tcp/4001/p2p/{PEER}");
        let e = c
            .bootstrap_add(&[good.clone(), "/ip4/10.0.0.2/tcp/4001".into()])
            .unwrap_err();
        assert!(matches!(e, ConfigError::BootstrapWithoutPeerId(_)), "{e}");
        assert!(c.bootstrap.is_empty(), "nothing added on error");
        assert!(c.bootstrap_add(&["not an address".into()]).is_err());
        assert_eq!(c.bootstrap_add(&[good.clone()]).unwrap(), vec![good]);
    }

    #[test]
    fn rm_by_peer_or_by_address() {
        let mut c = Config::default();
        let mars = "QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ";
        let defaults: Vec<String> = KUBO_DEFAULT_BOOTSTRAP
            .iter()
            .map(|s| s.to_string())
            .collect();
        c.bootstrap_add(&defaults).unwrap();
        // A whole address: that entry only.
        let tcp = format!("/ip4/104.131.131.82/tcp/4001/p2p/{mars}");
        assert_eq!(c.bootstrap_rm(&[tcp.clone()]).unwrap(), vec![tcp]);
        assert_eq!(c.bootstrap.len(), KUBO_DEFAULT_BOOTSTRAP.len() - 1);
        // The peer alone: every entry of it (here the QUIC one left).
        let removed = c.bootstrap_rm(&[format!("/p2p/{mars}")]).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(removed[0].contains("quic-v1"));
        // An invalid peer ID is an error; a peer not listed removes nothing.
        assert!(c.bootstrap_rm(&[format!("/p2p/{PEER}x")]).is_err());
        let other = "12D3KooWNVpCvnBmKMBJLG4eoEhKwv6BPR3jxJCusMfYDXMRtv7E";
        assert!(c
            .bootstrap_rm(&[format!("/p2p/{other}")])
            .unwrap()
            .is_empty());
        assert_eq!(c.bootstrap_rm_all().len(), KUBO_DEFAULT_BOOTSTRAP.len() - 2);
        assert!(c.bootstrap.is_empty());
    }
}
