//! A deterministic two-party simulation: a [`ClientSession`] fetches a multi-block UnixFS file
//! from a [`ServerEngine`] through the real wire codec, in memory, with simulated time.

use super::ledger::{ServerAction, ServerEngine, ServerEvent, StoreSource};
use super::protocol::{decode_frame, Message, ProtocolVersion};
use super::session::{ClientSession, SessionAction, SessionConfig, SessionEvent};
use crate::dag::links::links;
use crate::unixfs::{file::import_file, ChunkerSpec, ImportOptions, StoreSink};
use ipfs_kit_blockstore::{Blockstore, MemoryBlockstore};
use std::collections::VecDeque;

const CLIENT: u64 = 2;
const SERVER: u64 = 1;

fn file_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Sim {
    version: ProtocolVersion,
    now_ms: u64,
    server: ServerEngine<u64>,
    server_store: MemoryBlockstore,
    client: ClientSession<u64>,
    client_store: MemoryBlockstore,
    to_server: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
    done: bool,
    frames: usize,
}

impl Sim {
    fn client_actions(&mut self, actions: Vec<SessionAction<u64>>) {
        let mut work: VecDeque<SessionAction<u64>> = actions.into();
        while let Some(a) = work.pop_front() {
            match a {
                SessionAction::SendMessage { peer, msg } => {
                    assert_eq!(peer, SERVER);
                    self.to_server.push_back(msg.encode_frame(self.version));
                }
                SessionAction::BlockReceived { block, from } => {
                    assert_eq!(from, SERVER);
                    self.client_store.put(&block).unwrap();
                    let children: Vec<_> = links(block.cid(), block.data())
                        .unwrap()
                        .into_iter()
                        .filter(|c| !self.client_store.has(c).unwrap())
                        .collect();
                    if !children.is_empty() {
                        work.extend(self.client.want(&children, self.now_ms).unwrap());
                    }
                }
                // `Done` means "nothing wanted right now"; children wanted after it reopen the session.
                SessionAction::Done => self.done = self.client.is_done(),
                other => panic!("unexpected client action {other:?}"),
            }
        }
    }

    fn server_actions(&mut self, actions: Vec<ServerAction<u64>>) {
        for a in actions {
            match a {
                ServerAction::SendMessage { peer, msg } => {
                    assert_eq!(peer, CLIENT);
                    self.to_client.push_back(msg.encode_frame(self.version));
                }
                other => panic!("unexpected server action {other:?}"),
            }
        }
    }

    fn decode(&self, frame: &[u8]) -> Message {
        let (msg, used) = decode_frame(frame, self.version).unwrap().unwrap();
        assert_eq!(used, frame.len());
        msg
    }

    fn step(&mut self) -> bool {
        let mut moved = false;
        while let Some(f) = self.to_server.pop_front() {
            moved = true;
            self.frames += 1;
            let msg = self.decode(&f);
            let a = self.server.handle(
                ServerEvent::MessageReceived { peer: CLIENT, msg },
                &StoreSource(&self.server_store),
            );
            self.server_actions(a);
        }
        if let Some(f) = self.to_client.pop_front() {
            moved = true;
            self.frames += 1;
            let msg = self.decode(&f);
            let block_bytes = msg.block_bytes();
            let a = self.client.handle(
                SessionEvent::MessageReceived { peer: SERVER, msg },
                self.now_ms,
            );
            self.client_actions(a);
            // The frame is written out: release it from the server's backpressure budget.
            let a = self.server.handle(
                ServerEvent::MessageSent {
                    peer: CLIENT,
                    block_bytes,
                },
                &StoreSource(&self.server_store),
            );
            self.server_actions(a);
        }
        moved
    }
}

fn fetch_file(version: ProtocolVersion) {
    let data = file_bytes(3 * 1024 * 1024 + 12_345);
    let server_store = MemoryBlockstore::new();
    let opts = ImportOptions {
        chunker: ChunkerSpec::Size(8 * 1024),
        ..ImportOptions::default()
    };
    let root = import_file(&data[..], &opts, &StoreSink(&server_store), &|_| {})
        .unwrap()
        .cid;
    let dag_blocks = server_store.stat().unwrap().blocks;
    assert!(
        dag_blocks > 300,
        "want a multi-level DAG, got {dag_blocks} blocks"
    );

    let mut sim = Sim {
        version,
        now_ms: 0,
        server: ServerEngine::new(),
        server_store,
        client: ClientSession::new(SessionConfig::default()),
        client_store: MemoryBlockstore::new(),
        to_server: VecDeque::new(),
        to_client: VecDeque::new(),
        done: false,
        frames: 0,
    };
    let a = sim.server.handle(
        ServerEvent::PeerConnected {
            peer: CLIENT,
            version,
        },
        &StoreSource(&sim.server_store),
    );
    sim.server_actions(a);
    let a = sim.client.handle(
        SessionEvent::PeerConnected {
            peer: SERVER,
            version,
        },
        0,
    );
    sim.client_actions(a);
    let a = sim.client.want(&[root], 0).unwrap();
    sim.client_actions(a);

    let mut idle_ticks = 0;
    for _ in 0..100_000 {
        if sim.done {
            break;
        }
        if !sim.step() {
            // Nothing in flight: time passes (nothing should be lost, so this stays rare).
            idle_ticks += 1;
            sim.now_ms += 500;
            let a = sim.client.handle(SessionEvent::Tick, sim.now_ms);
            sim.client_actions(a);
        }
    }
    assert!(
        sim.done,
        "session did not finish: {} left",
        sim.client.remaining()
    );
    assert_eq!(idle_ticks, 0, "the transfer stalled");
    assert_eq!(sim.client_store.stat().unwrap().blocks, dag_blocks);
    // Each block was sent once.
    assert_eq!(
        sim.server.peer_stats(&CLIENT).unwrap().blocks_sent,
        dag_blocks
    );
    let mut out = Vec::new();
    crate::unixfs::export::cat(&sim.client_store, &root, 0, None, &mut out).unwrap();
    assert!(out == data, "fetched file differs");
}

#[test]
fn two_party_fetch_of_a_unixfs_file_over_1_2_0() {
    fetch_file(ProtocolVersion::V1_2_0);
}

#[test]
fn two_party_fetch_of_a_unixfs_file_over_1_1_0() {
    fetch_file(ProtocolVersion::V1_1_0);
}

#[test]
fn two_party_fetch_of_a_unixfs_file_over_1_0_0() {
    fetch_file(ProtocolVersion::V1_0_0);
}
