//! A deterministic simulation of replicas over a faulty network.
//!
//! Everything random comes from one seeded ChaCha8 generator and time is a virtual millisecond
//! counter, so a seed replays exactly. The network carries the two things the real one will:
//! announcements (gossip, to every peer) and block fetches (request/response, to one peer). Faults:
//! message loss, duplication, random delay (so reordering), symmetric partitions, asymmetric
//! (one-way) blocks, an isolated peer, crashes with restart from the persisted `MemStore`, a peer
//! joining late from nothing, compaction at random peers, and an attacker whose key nobody trusts
//! plus a "lax" trusted writer that trusts the attacker (so untrusted deltas end up embedded as
//! ancestors of trusted ones).
//!
//! Checks (`SimReport::violations`): after healing every honest peer holds the same state as the
//! oracle (all adds by trusted authors minus the tags trusted authors removed; which is add-wins);
//! no honest peer ever holds a tag written by an untrusted key; per-peer memory counters never
//! exceed their named limits.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use cid::Cid;
use libp2p_identity::ed25519;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::codec::{self, Announcement};
use crate::limits::*;
use crate::replica::{Action, Event, Persist, Replica, ReplicaConfig};
use crate::store::{MemStore, Store};
use crate::types::{DeltaId, PeerKey, Pin, PinSpec};

/// What a run does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    /// Trusted peers that write.
    pub writers: usize,
    /// Trusted peers that only follow.
    pub followers: usize,
    /// A trusted writer that also trusts the attacker.
    pub lax_writer: bool,
    /// A writer nobody (but the lax writer) trusts.
    pub attacker: bool,
    /// A follower that starts from nothing half-way through.
    pub late_joiner: bool,
    pub loss: f64,
    pub duplication: f64,
    pub delay_ms_max: u64,
    pub partitions: bool,
    pub crashes: bool,
    pub compaction: bool,
    /// Length of the faulty phase.
    pub active_ms: u64,
    /// Longest time allowed to converge once faults stop.
    pub heal_ms_max: u64,
    pub tick_ms: u64,
    /// Chance per tick that a writer issues an op.
    pub op_chance: f64,
    /// Distinct CIDs pinned (small: conflicts are the point).
    pub cid_universe: u64,
    pub replica: ReplicaConfig,
}

impl SimConfig {
    /// Every fault on, small and fast.
    pub fn chaos(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            writers: 3,
            followers: 2,
            lax_writer: true,
            attacker: true,
            late_joiner: true,
            loss: 0.15,
            duplication: 0.05,
            delay_ms_max: 300,
            partitions: true,
            crashes: true,
            compaction: true,
            active_ms: 20_000,
            heal_ms_max: 120_000,
            tick_ms: 50,
            op_chance: 0.08,
            cid_universe: 40,
            replica: ReplicaConfig {
                batch_ops_max: 8,
                batch_delay_ms: 200,
                announce_interval_ms: 1_000,
                fetch_timeout_ms: 600,
                compact_deltas_threshold: 0,
                compact_keep_priorities: 3,
                emit_state_changes: true,
                pending_bytes_max: crate::limits::PENDING_BYTES_MAX,
            },
        }
    }
}

#[derive(Clone, Debug)]
enum Msg {
    Announce(Announcement),
    FetchReq(Cid),
    FetchResp(Cid, Option<Vec<u8>>),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    at_ms: u64,
    seq: u64,
    from: usize,
    to: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Writer,
    Follower,
    Lax,
    Attacker,
}

pub struct SimNode {
    pub role: Role,
    pub key: PeerKey,
    secret: [u8; 32],
    trusted: Vec<PeerKey>,
    pub replica: Option<Replica>,
    pub store: MemStore,
    restart_at_ms: Option<u64>,
}

/// Counters and findings of a run.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub converged_at_ms: Option<u64>,
    pub violations: Vec<String>,
    pub messages: u64,
    pub dropped: u64,
    pub local_ops: u64,
    pub trusted_deltas: usize,
    pub crashes: u64,
    pub compactions: u64,
    pub snapshots_installed: u64,
    pub final_pins: usize,
}

pub struct Sim {
    pub cfg: SimConfig,
    rng: ChaCha8Rng,
    pub now_ms: u64,
    pub nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(Scheduled, usize)>>,
    payloads: HashMap<usize, Msg>,
    next_payload: usize,
    seq: u64,
    /// (from, to) pairs whose messages are dropped.
    blocked: HashSet<(usize, usize)>,
    heal_partition_at_ms: Option<u64>,
    faults: bool,
    /// Every delta written by a trusted author (for the oracle).
    trusted_deltas: HashMap<DeltaId, codec::Delta>,
    pub track_oracle: bool,
    pub report: SimReport,
}

fn keypair(secret: &[u8; 32]) -> ed25519::Keypair {
    match crate::types::keypair_from_secret(*secret) {
        Ok(k) => k,
        // 32 bytes are always a valid secret.
        Err(e) => unreachable!("ed25519 secret: {e}"),
    }
}

/// The lax writer and the attacker keep every delta body and never compact: they alone hold the
/// attacker's deltas that the lax writer's deltas link to, and their snapshots are refused by the
/// honest peers (trust sets differ), so what they dropped could never be had again and the lax
/// writer's later deltas would stay pending (a liveness loss confined to a misconfigured peer's
/// deltas; a cluster's peers share one trust set).
fn replica_config(cfg: &SimConfig, role: Role) -> ReplicaConfig {
    let mut r = cfg.replica.clone();
    if role == Role::Lax || role == Role::Attacker {
        r.compact_keep_priorities = u64::MAX;
    }
    r
}

/// The CID the simulation pins as number `i` of a universe named `space`.
pub fn sim_cid(space: &str, i: u64) -> Cid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{space}-{i}").as_bytes());
    match multihash::Multihash::<64>::wrap(0x12, &digest) {
        Ok(mh) => Cid::new_v1(0x55, mh),
        Err(_) => Cid::default(),
    }
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut roles = vec![Role::Writer; cfg.writers];
        roles.extend(std::iter::repeat_n(Role::Follower, cfg.followers));
        if cfg.late_joiner {
            roles.push(Role::Follower);
        }
        if cfg.lax_writer {
            roles.push(Role::Lax);
        }
        if cfg.attacker {
            roles.push(Role::Attacker);
        }
        let mut nodes: Vec<SimNode> = roles
            .into_iter()
            .map(|role| {
                let secret: [u8; 32] = rng.gen();
                let key = PeerKey(keypair(&secret).public().to_bytes());
                SimNode {
                    role,
                    key,
                    secret,
                    trusted: Vec::new(),
                    replica: None,
                    store: MemStore::default(),
                    restart_at_ms: None,
                }
            })
            .collect();
        let honest: Vec<PeerKey> = nodes
            .iter()
            .filter(|n| n.role != Role::Attacker)
            .map(|n| n.key)
            .collect();
        let attacker: Vec<PeerKey> = nodes
            .iter()
            .filter(|n| n.role == Role::Attacker)
            .map(|n| n.key)
            .collect();
        let late = if cfg.late_joiner {
            Some(cfg.writers + cfg.followers)
        } else {
            None
        };
        for (i, n) in nodes.iter_mut().enumerate() {
            n.trusted = match n.role {
                Role::Writer | Role::Follower => honest.clone(),
                Role::Lax | Role::Attacker => {
                    honest.iter().chain(attacker.iter()).copied().collect()
                }
            };
            if Some(i) == late {
                n.restart_at_ms = Some(cfg.active_ms / 2);
            } else {
                n.replica = Some(Replica::new(
                    keypair(&n.secret),
                    n.trusted.clone(),
                    replica_config(&cfg, n.role),
                ));
            }
        }
        let report = SimReport {
            seed: cfg.seed,
            ..SimReport::default()
        };
        Sim {
            faults: true,
            cfg,
            rng,
            now_ms: 0,
            nodes,
            queue: BinaryHeap::new(),
            payloads: HashMap::new(),
            next_payload: 0,
            seq: 0,
            blocked: HashSet::new(),
            heal_partition_at_ms: None,
            trusted_deltas: HashMap::new(),
            track_oracle: true,
            report,
        }
    }

    fn honest_keys(&self) -> HashSet<PeerKey> {
        self.nodes
            .iter()
            .filter(|n| n.role != Role::Attacker)
            .map(|n| n.key)
            .collect()
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        self.report.messages += 1;
        if self.blocked.contains(&(from, to)) || (self.faults && self.rng.gen_bool(self.cfg.loss)) {
            self.report.dropped += 1;
            return;
        }
        let copies = if self.faults && self.rng.gen_bool(self.cfg.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.cfg.delay_ms_max == 0 {
                0
            } else {
                self.rng.gen_range(1..=self.cfg.delay_ms_max)
            };
            self.seq += 1;
            let id = self.next_payload;
            self.next_payload += 1;
            self.payloads.insert(id, msg.clone());
            self.queue.push(Reverse((
                Scheduled {
                    at_ms: self.now_ms + delay,
                    seq: self.seq,
                    from,
                    to,
                },
                id,
            )));
        }
    }

    /// Feed an event to node `i` and carry out what it asks.
    pub fn handle(&mut self, i: usize, ev: Event) {
        let now = self.now_ms;
        let Some(r) = self.nodes[i].replica.as_mut() else {
            return;
        };
        let actions = r.handle(ev, now);
        self.run_actions(i, actions);
    }

    fn run_actions(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Broadcast(ann) => {
                    if ann.encode().len() > BROADCAST_BYTES_MAX {
                        self.report.violations.push(format!(
                            "peer {i} broadcast over {BROADCAST_BYTES_MAX} bytes"
                        ));
                    }
                    for to in 0..self.nodes.len() {
                        if to != i {
                            self.send(i, to, Msg::Announce(ann.clone()));
                        }
                    }
                }
                Action::Fetch { cid, from } => {
                    if let Some(to) = self.nodes.iter().position(|n| n.key == from) {
                        self.send(i, to, Msg::FetchReq(cid));
                    }
                }
                Action::Persist(p) => {
                    if self.track_oracle {
                        self.note_persist(&p);
                    }
                    if let Persist::Snapshot { root, blocks, .. } = &p {
                        // Written by another peer: installed here.
                        let author = blocks
                            .iter()
                            .find(|(c, _)| c == root)
                            .and_then(|(c, b)| codec::decode_snapshot_root(c, b).ok())
                            .map(|r| r.author);
                        if author.is_some_and(|a| a != self.nodes[i].key) {
                            self.report.snapshots_installed += 1;
                        }
                    }
                    // MemStore cannot fail.
                    let _ = self.nodes[i].store.apply(std::slice::from_ref(&p));
                }
                Action::StateChanged(_) | Action::OpRejected { .. } => {}
            }
        }
    }

    fn note_persist(&mut self, p: &Persist) {
        if let Persist::Delta { cid, bytes, .. } = p {
            let Ok(id) = codec::delta_id(cid) else { return };
            if self.trusted_deltas.contains_key(&id) {
                return;
            }
            if let Ok(d) = codec::decode_delta(cid, bytes) {
                if self.honest_keys().contains(&d.author) {
                    self.trusted_deltas.insert(id, d);
                }
            }
        }
    }

    fn deliver(&mut self, s: Scheduled, msg: Msg) {
        let (from, to) = (s.from, s.to);
        if self.blocked.contains(&(from, to)) {
            self.report.dropped += 1;
            return;
        }
        if self.nodes[to].replica.is_none() {
            self.report.dropped += 1;
            return;
        }
        let from_key = self.nodes[from].key;
        match msg {
            Msg::Announce(announcement) => self.handle(
                to,
                Event::HeadsAnnounced {
                    from: from_key,
                    announcement,
                },
            ),
            Msg::FetchReq(cid) => {
                let block = self.nodes[to].store.get_block(&cid).ok().flatten();
                self.send(to, from, Msg::FetchResp(cid, block));
            }
            Msg::FetchResp(cid, Some(bytes)) => self.handle(
                to,
                Event::BlockFetched {
                    from: from_key,
                    cid,
                    bytes,
                },
            ),
            Msg::FetchResp(cid, None) => self.handle(
                to,
                Event::FetchFailed {
                    from: from_key,
                    cid,
                },
            ),
        }
    }

    /// Deliver everything due by `now_ms`.
    fn deliver_due(&mut self) {
        while let Some(Reverse((s, _))) = self.queue.peek() {
            if s.at_ms > self.now_ms {
                break;
            }
            let Some(Reverse((s, id))) = self.queue.pop() else {
                break;
            };
            if let Some(msg) = self.payloads.remove(&id) {
                self.deliver(s, msg);
            }
        }
    }

    fn restart(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.restart_at_ms = None;
        let stored = match n.store.load() {
            Ok(s) => s,
            Err(e) => {
                self.report
                    .violations
                    .push(format!("peer {i}: load failed: {e}"));
                return;
            }
        };
        match Replica::restore(
            keypair(&n.secret),
            n.trusted.clone(),
            replica_config(&self.cfg, n.role),
            stored,
        ) {
            Ok(r) => n.replica = Some(r),
            Err(e) => self
                .report
                .violations
                .push(format!("peer {i}: restore failed: {e}")),
        }
    }

    fn random_faults(&mut self) {
        let n = self.nodes.len();
        if self.cfg.partitions {
            if let Some(t) = self.heal_partition_at_ms {
                if self.now_ms >= t {
                    self.blocked.clear();
                    self.heal_partition_at_ms = None;
                }
            } else if self.rng.gen_bool(0.01) {
                match self.rng.gen_range(0..3) {
                    0 => {
                        // Symmetric: split in two random halves.
                        let side: Vec<bool> = (0..n).map(|_| self.rng.gen_bool(0.5)).collect();
                        for a in 0..n {
                            for b in 0..n {
                                if side[a] != side[b] {
                                    self.blocked.insert((a, b));
                                }
                            }
                        }
                    }
                    1 => {
                        // Asymmetric: a few one-way blocks.
                        for _ in 0..n {
                            let (a, b) = (self.rng.gen_range(0..n), self.rng.gen_range(0..n));
                            self.blocked.insert((a, b));
                        }
                    }
                    _ => {
                        // One peer isolated.
                        let x = self.rng.gen_range(0..n);
                        for o in 0..n {
                            self.blocked.insert((x, o));
                            self.blocked.insert((o, x));
                        }
                    }
                }
                self.heal_partition_at_ms = Some(self.now_ms + self.rng.gen_range(500..5_000));
            }
        }
        if self.cfg.crashes && self.rng.gen_bool(0.004) {
            let i = self.rng.gen_range(0..n);
            if self.nodes[i].replica.is_some() {
                self.nodes[i].replica = None;
                self.nodes[i].restart_at_ms = Some(self.now_ms + self.rng.gen_range(200..4_000));
                self.report.crashes += 1;
            }
        }
        if self.cfg.compaction && self.rng.gen_bool(0.01) {
            let i = self.rng.gen_range(0..n);
            // The lax writer's snapshots are refused by everyone (its trust set differs), so it
            // never compacts: deltas only it holds must stay fetchable.
            if self.nodes[i].replica.is_some()
                && matches!(self.nodes[i].role, Role::Writer | Role::Follower)
            {
                self.report.compactions += 1;
                self.handle(i, Event::Compact);
            }
        }
    }

    fn random_ops(&mut self) {
        for i in 0..self.nodes.len() {
            let role = self.nodes[i].role;
            if !matches!(role, Role::Writer | Role::Lax | Role::Attacker)
                || self.nodes[i].replica.is_none()
            {
                continue;
            }
            if !self.rng.gen_bool(self.cfg.op_chance) {
                continue;
            }
            let space = if role == Role::Attacker && self.rng.gen_bool(0.5) {
                "evil"
            } else {
                "pin"
            };
            let cid = sim_cid(space, self.rng.gen_range(0..self.cfg.cid_universe));
            self.report.local_ops += 1;
            if self.rng.gen_bool(0.6) {
                let spec = PinSpec {
                    name: format!("n{}", self.rng.gen_range(0..4)),
                    replication_factor_min: if self.rng.gen_bool(0.5) { -1 } else { 1 },
                    replication_factor_max: -1,
                    ..PinSpec::default()
                };
                self.handle(i, Event::Pin(Pin { cid, spec }));
            } else {
                self.handle(i, Event::Unpin(cid));
            }
        }
    }

    /// Advance one tick: deliver due messages, inject faults and ops (while active), tick peers.
    pub fn step(&mut self) {
        self.now_ms += self.cfg.tick_ms;
        self.deliver_due();
        for i in 0..self.nodes.len() {
            if self.nodes[i]
                .restart_at_ms
                .is_some_and(|t| self.now_ms >= t)
            {
                self.restart(i);
            }
        }
        if self.faults {
            self.random_faults();
            self.random_ops();
        }
        for i in 0..self.nodes.len() {
            self.handle(i, Event::Tick);
        }
        self.check_bounds();
    }

    fn check_bounds(&mut self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(r) = &n.replica else { continue };
            let m = r.memory();
            let over = m.pending_deltas > PENDING_DELTAS_MAX
                || m.pending_bytes > PENDING_BYTES_MAX
                || m.fetches_in_flight > FETCHES_IN_FLIGHT_MAX
                || m.rejected_ids > REJECTED_IDS_MAX
                || m.peers_tracked > PEERS_TRACKED_MAX
                || m.batch_ops > self.cfg.replica.batch_ops_max
                || m.snapshot_fetch_bytes > SNAPSHOT_CHUNKS_MAX * SNAPSHOT_CHUNK_BYTES_MAX;
            if over {
                self.report.violations.push(format!(
                    "peer {i} over a memory bound at {} ms: {m:?}",
                    self.now_ms
                ));
            }
        }
    }

    /// Honest peers holding a tag by an untrusted author, or an attacker-only CID.
    fn check_trust(&mut self) {
        let honest = self.honest_keys();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.role != Role::Writer && n.role != Role::Follower {
                continue;
            }
            let Some(r) = &n.replica else { continue };
            for (cid, tag) in r.state().iter_tags() {
                let author = r.state().author(&tag.delta);
                if author.is_none_or(|a| !honest.contains(&a)) {
                    self.report.violations.push(format!(
                        "peer {i} holds {cid} from untrusted delta {:?}",
                        tag.delta
                    ));
                }
            }
        }
    }

    /// The expected state: adds by trusted authors minus the tags trusted authors removed.
    pub fn oracle(&self) -> Vec<(Cid, PinSpec)> {
        let mut removed: HashSet<(Cid, DeltaId)> = HashSet::new();
        for d in self.trusted_deltas.values() {
            for op in &d.ops {
                for t in &op.removes {
                    removed.insert((op.cid, *t));
                }
            }
        }
        let mut best: HashMap<Cid, (u64, DeltaId, PinSpec)> = HashMap::new();
        for d in self.trusted_deltas.values() {
            for op in &d.ops {
                let Some(spec) = &op.pin else { continue };
                if removed.contains(&(op.cid, d.id)) {
                    continue;
                }
                let cand = (d.priority, d.id);
                if best.get(&op.cid).is_none_or(|b| (b.0, b.1) < cand) {
                    best.insert(op.cid, (d.priority, d.id, spec.clone()));
                }
            }
        }
        let mut v: Vec<(Cid, PinSpec)> = best.into_iter().map(|(c, b)| (c, b.2)).collect();
        v.sort_unstable_by_key(|x| x.0);
        v
    }

    /// Whether every honest peer is up and holds `expected`.
    fn all_hold(&self, expected: &[(Cid, PinSpec)]) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Writer || n.role == Role::Follower)
            .all(|n| {
                n.replica.as_ref().is_some_and(|r| {
                    r.state().len() == expected.len() && r.state().sorted() == expected
                })
            })
    }

    /// Stop faults and new ops; restart crashed peers; heal partitions.
    pub fn heal(&mut self) {
        self.faults = false;
        self.blocked.clear();
        self.heal_partition_at_ms = None;
        for i in 0..self.nodes.len() {
            if self.nodes[i].replica.is_none() {
                self.restart(i);
            }
        }
        for i in 0..self.nodes.len() {
            self.handle(i, Event::Flush);
        }
    }

    /// Run the whole scenario and check it.
    pub fn run(&mut self) -> SimReport {
        while self.now_ms < self.cfg.active_ms {
            self.step();
            if self.now_ms.is_multiple_of(1_000) {
                self.check_trust();
            }
        }
        self.heal();
        let deadline = self.now_ms + self.cfg.heal_ms_max;
        let mut expected = self.oracle();
        while self.now_ms < deadline {
            self.step();
            if self.now_ms.is_multiple_of(500) {
                expected = self.oracle();
                if self.all_hold(&expected) {
                    self.report.converged_at_ms = Some(self.now_ms);
                    break;
                }
            }
        }
        self.check_trust();
        self.report.trusted_deltas = self.trusted_deltas.len();
        self.report.final_pins = expected.len();
        if self.report.converged_at_ms.is_none() {
            let counts: Vec<String> = self
                .nodes
                .iter()
                .map(|n| {
                    n.replica
                        .as_ref()
                        .map_or(format!("{:?}:down", n.role), |r| {
                            format!(
                                "{:?}:{} ctx={} snap={:?} heads={:?} mem={:?}",
                                n.role,
                                r.state().len(),
                                r.state().context().len(),
                                r.snapshot(),
                                r.heads(),
                                r.memory()
                            ) + &if r.memory().pending_deltas > 0 {
                                r.debug_fetches()
                            } else {
                                String::new()
                            }
                        })
                })
                .collect();
            self.report.violations.push(format!(
                "no convergence within {} ms; oracle {} pins; peers {counts:?}",
                self.cfg.heal_ms_max,
                expected.len()
            ));
        }
        self.report.clone()
    }
}
