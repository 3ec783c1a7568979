//! Scenario tests of the server engine.

use super::*;
use crate::bitswap::protocol::Wantlist;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};
use ipfs_kit_blockstore::MemoryBlockstore;

type Engine = ServerEngine<u64>;

fn block(seed: u64, len: usize) -> Block {
    let mut data = seed.to_le_bytes().to_vec();
    data.extend((8..len.max(8)).map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 / 7)) as u8));
    let cid = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(&data).unwrap());
    Block::new(cid, Bytes::from(data)).unwrap()
}

fn missing(seed: u64) -> Cid {
    *block(1_000_000 + seed, 64).cid()
}

fn wants(entries: Vec<WantEntry>) -> Message {
    Message {
        wantlist: Some(Wantlist {
            entries,
            full: false,
        }),
        ..Message::default()
    }
}

fn connect(e: &mut Engine, store: &MemoryBlockstore, peer: u64, v: ProtocolVersion) {
    let a = e.handle(
        ServerEvent::PeerConnected { peer, version: v },
        &StoreSource(store),
    );
    assert!(a.is_empty());
}

fn recv(
    e: &mut Engine,
    store: &MemoryBlockstore,
    peer: u64,
    msg: Message,
) -> Vec<ServerAction<u64>> {
    e.handle(
        ServerEvent::MessageReceived { peer, msg },
        &StoreSource(store),
    )
}

/// The messages sent, with their blocks read from `store` as the handler would.
fn sent(actions: &[ServerAction<u64>], store: &MemoryBlockstore) -> Vec<(u64, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            ServerAction::SendMessage { peer, msg } => {
                Some((*peer, msg.clone().load(&StoreSource(store))))
            }
            _ => None,
        })
        .collect()
}

fn only_message(actions: &[ServerAction<u64>], store: &MemoryBlockstore) -> Message {
    let mut s = sent(actions, store);
    assert_eq!(s.len(), 1, "{} actions", actions.len());
    s.remove(0).1
}

#[test]
fn want_have_gets_have_dont_have_or_silence() {
    let store = MemoryBlockstore::new();
    let big = block(1, 4096);
    store.put(&big).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let a = recv(
        &mut e,
        &store,
        1,
        wants(vec![
            WantEntry::want_have(*big.cid(), 1, true),
            WantEntry::want_have(missing(1), 1, true),
            WantEntry::want_have(missing(2), 1, false),
        ]),
    );
    let m = only_message(&a, &store);
    assert!(m.blocks.is_empty());
    assert_eq!(
        m.presences,
        vec![
            BlockPresence {
                cid: *big.cid(),
                kind: PresenceType::Have
            },
            BlockPresence {
                cid: missing(1),
                kind: PresenceType::DontHave
            },
        ]
    );
    // Answered want-haves leave the ledger; unanswered ones wait for the block.
    assert_eq!(e.peer_stats(&1).unwrap().wants, 2);
}

#[test]
fn small_blocks_are_inlined_up_to_the_limit() {
    let store = MemoryBlockstore::new();
    let at = block(1, INLINE_BLOCK_BYTES_MAX);
    let over = block(2, INLINE_BLOCK_BYTES_MAX + 1);
    store.put_many(&[at.clone(), over.clone()]).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let a = recv(
        &mut e,
        &store,
        1,
        wants(vec![
            WantEntry::want_have(*at.cid(), 2, true),
            WantEntry::want_have(*over.cid(), 1, true),
        ]),
    );
    let m = only_message(&a, &store);
    assert_eq!(m.blocks, vec![at]);
    assert_eq!(m.presences.len(), 1);
    assert_eq!(m.presences[0].cid, *over.cid());
    assert_eq!(m.presences[0].kind, PresenceType::Have);
}

#[test]
fn want_block_block_or_dont_have_then_served_on_block_added() {
    let store = MemoryBlockstore::new();
    let b = block(1, 5000);
    let later = block(2, 5000);
    store.put(&b).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let a = recv(
        &mut e,
        &store,
        1,
        wants(vec![
            WantEntry::want_block(*b.cid(), 1, true),
            WantEntry::want_block(*later.cid(), 1, true),
        ]),
    );
    let m = only_message(&a, &store);
    assert_eq!(m.blocks, vec![b.clone()]);
    assert_eq!(m.presences[0].kind, PresenceType::DontHave);
    // The waiting want is served when the block arrives.
    store.put(&later).unwrap();
    let a = e.handle(
        ServerEvent::BlockAdded { cid: *later.cid() },
        &StoreSource(&store),
    );
    assert_eq!(only_message(&a, &store).blocks, vec![later]);
    assert_eq!(e.peer_stats(&1).unwrap().wants, 0);
}

#[test]
fn cancel_and_full_wantlist() {
    let store = MemoryBlockstore::new();
    let b = block(1, 100);
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    recv(
        &mut e,
        &store,
        1,
        wants(vec![WantEntry::want_block(*b.cid(), 1, false)]),
    );
    assert_eq!(e.peer_stats(&1).unwrap().wants, 1);
    recv(&mut e, &store, 1, wants(vec![WantEntry::cancel(*b.cid())]));
    assert_eq!(e.peer_stats(&1).unwrap().wants, 0);
    store.put(&b).unwrap();
    let a = e.handle(
        ServerEvent::BlockAdded { cid: *b.cid() },
        &StoreSource(&store),
    );
    assert!(a.is_empty(), "cancelled want served");

    recv(
        &mut e,
        &store,
        1,
        wants(
            (0..10)
                .map(|i| WantEntry::want_block(missing(i), 1, false))
                .collect(),
        ),
    );
    assert_eq!(e.peer_stats(&1).unwrap().wants, 10);
    let full = Message {
        wantlist: Some(Wantlist {
            entries: vec![WantEntry::want_block(missing(99), 1, false)],
            full: true,
        }),
        ..Message::default()
    };
    recv(&mut e, &store, 1, full);
    assert_eq!(e.wantlist_of(&1), vec![(missing(99), 1, WantType::Block)]);
}

#[test]
fn want_flood_stays_bounded_and_evicts_by_priority() {
    let store = MemoryBlockstore::new();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    // 50 messages of 1000 distinct wants, rising priority: the ledger keeps the newest 1024.
    for round in 0..50u64 {
        let entries = (0..1000)
            .map(|i| WantEntry::want_block(missing(round * 1000 + i), round as i32, false))
            .collect();
        let a = recv(&mut e, &store, 1, wants(entries));
        assert!(a.is_empty());
        assert!(e.peer_stats(&1).unwrap().wants <= WANTLIST_ENTRIES_PER_PEER_MAX);
    }
    let wl = e.wantlist_of(&1);
    assert_eq!(wl.len(), WANTLIST_ENTRIES_PER_PEER_MAX);
    assert!(wl.iter().all(|(_, p, _)| *p >= 48));
    // A lower-priority want is dropped when full; a higher one evicts the lowest.
    recv(
        &mut e,
        &store,
        1,
        wants(vec![WantEntry::want_block(missing(7_000_000), 0, false)]),
    );
    assert!(!e
        .wantlist_of(&1)
        .iter()
        .any(|(c, _, _)| *c == missing(7_000_000)));
    recv(
        &mut e,
        &store,
        1,
        wants(vec![WantEntry::want_block(missing(7_000_001), 100, false)]),
    );
    let wl = e.wantlist_of(&1);
    assert_eq!(wl.len(), WANTLIST_ENTRIES_PER_PEER_MAX);
    assert_eq!(wl[0], (missing(7_000_001), 100, WantType::Block));
}

#[test]
fn wantlist_over_the_limit_in_one_message_is_penalized_then_disconnected() {
    let store = MemoryBlockstore::new();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let at: Vec<_> = (0..WANTLIST_ENTRIES_PER_PEER_MAX as u64)
        .map(|i| WantEntry::want_block(missing(i), 1, false))
        .collect();
    assert!(recv(&mut e, &store, 1, wants(at)).is_empty());
    let over = |k: u64| -> Vec<WantEntry> {
        (0..=WANTLIST_ENTRIES_PER_PEER_MAX as u64)
            .map(|i| WantEntry::want_block(missing(k * 10_000 + i), 1, false))
            .collect()
    };
    for k in 1..PENALTIES_BEFORE_DISCONNECT as u64 {
        let a = recv(&mut e, &store, 1, wants(over(k)));
        assert_eq!(
            a,
            vec![ServerAction::Penalize {
                peer: 1,
                reason: PenaltyReason::WantlistFlood {
                    entries: WANTLIST_ENTRIES_PER_PEER_MAX + 1
                }
            }]
        );
        assert!(e.peer_stats(&1).unwrap().wants <= WANTLIST_ENTRIES_PER_PEER_MAX);
    }
    let a = recv(&mut e, &store, 1, wants(over(99)));
    assert_eq!(a.last(), Some(&ServerAction::Disconnect { peer: 1 }));
    assert!(e.peer_stats(&1).is_none());
}

#[test]
fn fair_round_robin_and_backpressure_across_two_peers() {
    // Each peer wants four budgets' worth of blocks.
    const BLOCK_BYTES: usize = 64 * 1024;
    let per_budget = OUTSTANDING_BYTES_PER_PEER_MAX / BLOCK_BYTES;
    let store = MemoryBlockstore::new();
    let blocks: Vec<Block> = (0..4 * per_budget as u64)
        .map(|i| block(i, BLOCK_BYTES))
        .collect();
    store.put_many(&blocks).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    connect(&mut e, &store, 2, ProtocolVersion::V1_2_0);
    let all: Vec<WantEntry> = blocks
        .iter()
        .map(|b| WantEntry::want_block(*b.cid(), 1, false))
        .collect();
    // Peer 1 asks first; peer 2 asks while peer 1 is still backlogged.
    let a1 = recv(&mut e, &store, 1, wants(all.clone()));
    let a2 = recv(&mut e, &store, 2, wants(all.clone()));
    // Each fills its budget up to the last whole message that fits.
    let full = OUTSTANDING_BYTES_PER_PEER_MAX - MESSAGE_BLOCK_BYTES_TARGET
        ..=OUTSTANDING_BYTES_PER_PEER_MAX;
    let first: usize = sent(&a1, &store).iter().map(|(_, m)| m.block_bytes()).sum();
    assert!(full.contains(&first), "{first}");
    let second: usize = sent(&a2, &store).iter().map(|(_, m)| m.block_bytes()).sum();
    assert_eq!(second, first);
    // Nothing more until the peers acknowledge: backpressure.
    let idle = e.handle(ServerEvent::Tick { now_ms: 1 }, &StoreSource(&store));
    assert!(idle.is_empty());
    // Acknowledge messages in the order they were sent (both peers drain at the same rate):
    // neither peer ever gets more than one budget ahead of the other.
    let mut pending: std::collections::VecDeque<(u64, usize)> = sent(&a1, &store)
        .iter()
        .chain(sent(&a2, &store).iter())
        .map(|(p, m)| (*p, m.block_bytes()))
        .collect();
    let mut served = [0usize; 3];
    for (p, m) in sent(&a1, &store).iter().chain(sent(&a2, &store).iter()) {
        served[*p as usize] += m.blocks.len();
    }
    while let Some((peer, bytes)) = pending.pop_front() {
        let a = e.handle(
            ServerEvent::MessageSent {
                peer,
                block_bytes: bytes,
            },
            &StoreSource(&store),
        );
        for (p, m) in sent(&a, &store) {
            assert!(m.block_bytes() <= MESSAGE_BLOCK_BYTES_TARGET);
            assert!(m.block_bytes() <= OUTBOUND_BLOCK_BYTES_MAX);
            served[p as usize] += m.blocks.len();
            pending.push_back((p, m.block_bytes()));
        }
        assert!(served[1].abs_diff(served[2]) <= per_budget, "{served:?}");
        assert!(e.peer_stats(&1).unwrap().outstanding_bytes <= OUTSTANDING_BYTES_PER_PEER_MAX);
    }
    assert_eq!(served, [0, 4 * per_budget, 4 * per_budget]);
}

#[test]
fn scheduled_messages_carry_cids_and_read_blocks_at_load() {
    // The engine reads no block data (only sizes); a block deleted between scheduling and
    // loading is left out of the message, and its scheduled bytes are still what the
    // MessageSent releases.
    struct SizesOnly<'a>(&'a MemoryBlockstore);
    impl BlockSource for SizesOnly<'_> {
        fn block_size(&self, cid: &Cid) -> Option<usize> {
            StoreSource(self.0).block_size(cid)
        }
        fn block(&self, _: &Cid) -> Option<Bytes> {
            panic!("the engine must not read block data")
        }
    }
    let store = MemoryBlockstore::new();
    let (b1, b2) = (block(1, 4096), block(2, 4096));
    store.put_many(&[b1.clone(), b2.clone()]).unwrap();
    let mut e = Engine::new();
    let a = e.handle(
        ServerEvent::PeerConnected {
            peer: 1,
            version: ProtocolVersion::V1_2_0,
        },
        &SizesOnly(&store),
    );
    assert!(a.is_empty());
    let a = e.handle(
        ServerEvent::MessageReceived {
            peer: 1,
            msg: wants(vec![
                WantEntry::want_block(*b1.cid(), 2, false),
                WantEntry::want_block(*b2.cid(), 1, false),
            ]),
        },
        &SizesOnly(&store),
    );
    let [ServerAction::SendMessage { msg: out, .. }] = a.as_slice() else {
        panic!("{a:?}");
    };
    assert_eq!(out.blocks, vec![(*b1.cid(), 4096), (*b2.cid(), 4096)]);
    assert_eq!(out.block_bytes(), 8192);
    assert_eq!(e.peer_stats(&1).unwrap().outstanding_bytes, 8192);
    store.delete_many(&[*b2.cid()]).unwrap();
    let m = out.clone().load(&StoreSource(&store));
    assert_eq!(m.blocks, vec![b1]);
    let a = e.handle(
        ServerEvent::MessageSent {
            peer: 1,
            block_bytes: out.block_bytes(),
        },
        &SizesOnly(&store),
    );
    assert!(a.is_empty());
    assert_eq!(e.peer_stats(&1).unwrap().outstanding_bytes, 0);
}

#[test]
fn version_1_0_peers_get_blocks_but_no_presences() {
    let store = MemoryBlockstore::new();
    let b = block(1, 300);
    store.put(&b).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_0_0);
    let a = recv(
        &mut e,
        &store,
        1,
        wants(vec![
            WantEntry::want_block(missing(1), 5, true),
            WantEntry::want_block(*b.cid(), 1, false),
        ]),
    );
    let m = only_message(&a, &store);
    assert_eq!(m.blocks, vec![b]);
    assert!(m.presences.is_empty());
}

#[test]
fn higher_priority_is_served_first() {
    let store = MemoryBlockstore::new();
    let blocks: Vec<Block> = (0..6).map(|i| block(i, 400 * 1024)).collect();
    store.put_many(&blocks).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let entries = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| WantEntry::want_block(*b.cid(), i as i32, false))
        .collect();
    let a = recv(&mut e, &store, 1, wants(entries));
    let order: Vec<Cid> = sent(&a, &store)
        .iter()
        .flat_map(|(_, m)| m.blocks.iter().map(|b| *b.cid()))
        .collect();
    assert_eq!(
        order[..3],
        [*blocks[5].cid(), *blocks[4].cid(), *blocks[3].cid()]
    );
}

#[test]
fn disconnect_forgets_the_peer() {
    let store = MemoryBlockstore::new();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    recv(
        &mut e,
        &store,
        1,
        wants(vec![WantEntry::want_block(missing(1), 1, false)]),
    );
    e.handle(
        ServerEvent::PeerDisconnected { peer: 1 },
        &StoreSource(&store),
    );
    assert_eq!(e.peer_count(), 0);
}

#[test]
fn block_added_under_another_cid_version_serves_the_want() {
    let store = MemoryBlockstore::new();
    let data = Bytes::from_static(b"same bytes, two names");
    let mh = HashFn::Sha2_256.digest(&data).unwrap();
    let v0 = Cid::new_v0(mh).unwrap();
    let v1 = Cid::new_v1(RAW_CODEC, mh);
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    recv(
        &mut e,
        &store,
        1,
        wants(vec![WantEntry::want_block(v0, 1, false)]),
    );
    store.put(&Block::new(v1, data.clone()).unwrap()).unwrap();
    let a = e.handle(ServerEvent::BlockAdded { cid: v1 }, &StoreSource(&store));
    let m = only_message(&a, &store);
    assert_eq!(m.blocks.len(), 1);
    assert_eq!(*m.blocks[0].cid(), v0);
    assert_eq!(m.blocks[0].data(), &data);
}

#[test]
fn waiting_wants_are_served_on_tick_when_the_block_reaches_the_store_another_way() {
    // A block written into the store by someone else (an `add` through the API) comes with no
    // BlockAdded: the next tick finds it.
    let store = MemoryBlockstore::new();
    let big = block(1, 5000);
    let small = block(2, 100);
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let a = recv(
        &mut e,
        &store,
        1,
        wants(vec![
            WantEntry::want_block(*big.cid(), 2, true),
            WantEntry::want_have(*small.cid(), 1, true),
        ]),
    );
    let m = only_message(&a, &store);
    assert!(m.blocks.is_empty());
    assert_eq!(m.presences.len(), 2);
    assert!(m.presences.iter().all(|p| p.kind == PresenceType::DontHave));
    // Nothing new in the store: a tick sends nothing (DONT_HAVE is said once).
    let a = e.handle(ServerEvent::Tick { now_ms: 250 }, &StoreSource(&store));
    assert!(a.is_empty(), "{a:?}");
    store.put(&big).unwrap();
    store.put(&small).unwrap();
    let a = e.handle(ServerEvent::Tick { now_ms: 500 }, &StoreSource(&store));
    let m = only_message(&a, &store);
    // The want-block gets the block, the small want-have gets it inline.
    assert_eq!(m.blocks, vec![big, small]);
    assert_eq!(e.peer_stats(&1).unwrap().wants, 0);
    let a = e.handle(ServerEvent::Tick { now_ms: 750 }, &StoreSource(&store));
    assert!(a.is_empty(), "{a:?}");
}

#[test]
fn tick_rechecks_are_bounded_and_rotate_over_peers() {
    // More waiting wants than one tick re-checks: every peer is still served within a few
    // ticks, and no tick looks up more than WAITING_RECHECKS_PER_TICK_MAX wants.
    struct Counting<'a>(&'a MemoryBlockstore, std::cell::Cell<usize>);
    impl BlockSource for Counting<'_> {
        fn block_size(&self, cid: &Cid) -> Option<usize> {
            self.1.set(self.1.get() + 1);
            StoreSource(self.0).block_size(cid)
        }
        fn block(&self, cid: &Cid) -> Option<Bytes> {
            StoreSource(self.0).block(cid)
        }
    }
    let store = MemoryBlockstore::new();
    let mut e = Engine::new();
    let peers = (WAITING_RECHECKS_PER_TICK_MAX / WANTLIST_ENTRIES_PER_PEER_MAX + 2) as u64;
    let mut per_peer = Vec::new();
    for p in 0..peers {
        connect(&mut e, &store, p, ProtocolVersion::V1_2_0);
        let entries: Vec<WantEntry> = (0..WANTLIST_ENTRIES_PER_PEER_MAX as u64)
            .map(|i| WantEntry::want_have(missing(p * 10_000 + i), 1, false))
            .collect();
        let a = recv(&mut e, &store, p, wants(entries));
        assert!(a.is_empty(), "no DONT_HAVE was asked for");
        let b = block(500 + p, 64);
        let a = recv(
            &mut e,
            &store,
            p,
            wants(vec![WantEntry::want_block(*b.cid(), 9, false)]),
        );
        assert!(a.is_empty());
        per_peer.push(b);
    }
    for b in &per_peer {
        store.put(b).unwrap();
    }
    let mut served = BTreeSet::new();
    for t in 1..=peers {
        let src = Counting(&store, std::cell::Cell::new(0));
        let a = e.handle(ServerEvent::Tick { now_ms: t * 250 }, &src);
        assert!(
            src.1.get() <= WAITING_RECHECKS_PER_TICK_MAX,
            "{}",
            src.1.get()
        );
        for (p, m) in sent(&a, &store) {
            assert_eq!(m.blocks.len(), 1);
            served.insert(p);
        }
    }
    assert_eq!(
        served.len() as u64,
        peers,
        "every peer served within {peers} ticks"
    );
}

#[test]
fn a_block_damaged_on_disk_is_not_served() {
    // The serve path reads with `get_trusted` (the pack store's crc, no re-hash): a damaged
    // record must still never go out as block data.
    let dir = tempfile::tempdir().unwrap();
    let store = ipfs_kit_blockstore::DiskBlockstore::open(dir.path()).unwrap();
    let (good, bad) = (block(41, 4096), block(42, 4096));
    store.put_many(&[good.clone(), bad.clone()]).unwrap();
    let out = Outgoing {
        presences: Vec::new(),
        blocks: vec![(*good.cid(), 4096), (*bad.cid(), 4096)],
    };
    let intact = out.clone().load(&StoreSource(&store));
    assert_eq!(intact.blocks, vec![good.clone(), bad.clone()]);
    // `bad` was appended last: the segment's last byte is its last data byte.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    let m = out.load(&StoreSource(&store));
    assert_eq!(m.blocks, vec![good]);
}

#[test]
fn a_wide_want_is_answered_in_messages_of_a_few_blocks() {
    // 24 small blocks (a file's first layer of links) fit one message by size, but go in
    // messages of at most BLOCKS_PER_MESSAGE_MAX (see its documentation: kubo v0.22).
    let store = MemoryBlockstore::new();
    let blocks: Vec<Block> = (0..24).map(|i| block(i, 8 * 1024)).collect();
    store.put_many(&blocks).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let entries = blocks
        .iter()
        .map(|b| WantEntry::want_block(*b.cid(), 1, true))
        .collect();
    let msgs = sent(&recv(&mut e, &store, 1, wants(entries)), &store);
    let sizes: Vec<usize> = msgs.iter().map(|(_, m)| m.blocks.len()).collect();
    assert_eq!(
        sizes,
        vec![BLOCKS_PER_MESSAGE_MAX; 24 / BLOCKS_PER_MESSAGE_MAX]
    );
    let served: BTreeSet<Cid> = msgs
        .iter()
        .flat_map(|(_, m)| m.blocks.iter().map(|b| *b.cid()))
        .collect();
    assert_eq!(served, blocks.iter().map(|b| *b.cid()).collect());
}

/// A transfer of kubo-sized leaves goes out in messages of four (the receiver hashes them in
/// pairs): the send pipeline holds whole messages, and a new one starts only when a whole one
/// fits, never with the one or three leaves that were left of the budget.
#[test]
fn leaves_go_out_four_to_a_message() {
    const LEAF_BYTES: usize = 262_158;
    let store = MemoryBlockstore::new();
    let blocks: Vec<Block> = (0..64u64).map(|i| block(i, LEAF_BYTES)).collect();
    store.put_many(&blocks).unwrap();
    let mut e = Engine::new();
    connect(&mut e, &store, 1, ProtocolVersion::V1_2_0);
    let all: Vec<WantEntry> = blocks
        .iter()
        .map(|b| WantEntry::want_block(*b.cid(), 1, false))
        .collect();
    let mut pending: std::collections::VecDeque<usize> =
        sent(&recv(&mut e, &store, 1, wants(all)), &store)
            .iter()
            .map(|(_, m)| {
                assert_eq!(m.blocks.len(), 4);
                m.block_bytes()
            })
            .collect();
    assert_eq!(pending.len(), 8, "eight whole messages in flight");
    let mut blocks_sent = 32;
    while let Some(bytes) = pending.pop_front() {
        let a = e.handle(
            ServerEvent::MessageSent {
                peer: 1,
                block_bytes: bytes,
            },
            &StoreSource(&store),
        );
        for (_, m) in sent(&a, &store) {
            assert_eq!(m.blocks.len(), 4);
            blocks_sent += 4;
            pending.push_back(m.block_bytes());
        }
    }
    assert_eq!(blocks_sent, 64);
}
