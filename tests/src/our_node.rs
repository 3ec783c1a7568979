//! The ipfs-kit side of the network interop tests: an in-process node with a fresh repository
//! in a temporary directory, listening on TCP on loopback, and the waits those tests share
//! (kubo lists us; identify with a peer ran).

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use ipfs_kit::net::{Keypair, Node, NodeConfig, PeerId, PeerInfo};
use ipfs_kit::repo::Repo;

use crate::kubo_serve::KuboServe;

/// A running node and the repository it serves and fetches into.
pub struct OurNode {
    pub node: Node,
    pub repo: Repo,
    _dir: tempfile::TempDir,
}

impl OurNode {
    /// Starts a node on `/ip4/127.0.0.1/tcp/0` whose fetches fail after `stall` without a
    /// block; `tune` edits its config first.
    pub async fn start(stall: Duration, tune: impl FnOnce(&mut NodeConfig)) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let repo = Repo::init(&dir.path().join("repo"))?;
        let mut c = NodeConfig::new(Keypair::generate_ed25519()).with_repo(repo.clone());
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
        c.fetch_stall_timeout = stall;
        tune(&mut c);
        Ok(Self {
            node: Node::start(c).await?,
            repo,
            _dir: dir,
        })
    }

    /// Dials kubo and waits (up to `wait`) until kubo lists us among its peers.
    pub async fn connect_to(&self, kubo: &mut KuboServe, wait: Duration) -> Result<PeerId> {
        let kubo_peer: PeerId = kubo.id.parse()?;
        self.node.connect(kubo.dial_addr()?).await?;
        let ours = self.node.peer_id().to_string();
        let deadline = tokio::time::Instant::now() + wait;
        while !kubo.peers()?.contains(&ours) {
            if tokio::time::Instant::now() >= deadline {
                bail!("kubo never listed us within {wait:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !self.node.peers().await?.contains(&kubo_peer) {
            bail!("we do not list kubo");
        }
        Ok(kubo_peer)
    }

    /// What identify told us about the connected `peer`, waiting (up to `wait`) for it.
    pub async fn identified(&self, peer: PeerId, wait: Duration) -> Result<PeerInfo> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let info = self.node.peer_info(peer).await?;
            if let Some(i) = info.filter(|i| i.agent_version.is_some()) {
                return Ok(i);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow::anyhow!("identify with {peer} never ran"))
                    .context(format!("waited {wait:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
