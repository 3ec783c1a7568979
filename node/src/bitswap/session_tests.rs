//! Scenario tests of the client session.

use super::*;
use crate::bitswap::protocol::{BlockPresence, WantType};
use bytes::Bytes;
use ipfs_kit_blockstore::hash::{HashFn, RAW_CODEC};

type Session = ClientSession<u64>;

fn block(seed: u64) -> Block {
    let data = format!("block number {seed} with some bytes").into_bytes();
    let cid = Cid::new_v1(RAW_CODEC, HashFn::Sha2_256.digest(&data).unwrap());
    Block::new(cid, Bytes::from(data)).unwrap()
}

fn session(peers: &[u64]) -> Session {
    let mut s = Session::new(SessionConfig::default());
    for &p in peers {
        let a = s.handle(
            SessionEvent::PeerConnected {
                peer: p,
                version: ProtocolVersion::V1_2_0,
            },
            0,
        );
        assert!(a.is_empty());
    }
    s
}

/// (peer, entry) for every want entry sent.
fn entries(actions: &[SessionAction<u64>]) -> Vec<(u64, WantEntry)> {
    let mut out = Vec::new();
    for a in actions {
        if let SessionAction::SendMessage { peer, msg } = a {
            for e in &msg.wantlist.as_ref().unwrap().entries {
                out.push((*peer, e.clone()));
            }
        }
    }
    out
}

fn presence(
    s: &mut Session,
    peer: u64,
    cid: Cid,
    kind: PresenceType,
    now: u64,
) -> Vec<SessionAction<u64>> {
    s.handle(
        SessionEvent::MessageReceived {
            peer,
            msg: Message {
                presences: vec![BlockPresence { cid, kind }],
                ..Message::default()
            },
        },
        now,
    )
}

fn deliver(s: &mut Session, peer: u64, b: Block, now: u64) -> Vec<SessionAction<u64>> {
    s.handle(
        SessionEvent::MessageReceived {
            peer,
            msg: Message {
                blocks: vec![b],
                ..Message::default()
            },
        },
        now,
    )
}

fn want_block_target(actions: &[SessionAction<u64>], cid: &Cid) -> Vec<u64> {
    entries(actions)
        .into_iter()
        .filter(|(_, e)| e.cid == *cid && !e.cancel && e.want_type == WantType::Block)
        .map(|(p, _)| p)
        .collect()
}

#[test]
fn want_have_broadcast_then_want_block_then_cancel_and_done() {
    let b = block(1);
    let mut s = session(&[1, 2, 3]);
    let a = s.want(&[*b.cid()], 0).unwrap();
    let e = entries(&a);
    assert_eq!(e.len(), 3);
    assert!(e
        .iter()
        .all(|(_, e)| e.want_type == WantType::Have && e.send_dont_have && !e.cancel));

    let a = presence(&mut s, 2, *b.cid(), PresenceType::Have, 10);
    assert_eq!(want_block_target(&a, b.cid()), vec![2]);

    let a = deliver(&mut s, 2, b.clone(), 20);
    assert!(a.contains(&SessionAction::BlockReceived {
        block: b.clone(),
        from: 2
    }));
    let cancels: Vec<u64> = entries(&a)
        .into_iter()
        .filter(|(_, e)| e.cancel)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(cancels, vec![1, 3]);
    assert_eq!(a.last(), Some(&SessionAction::Done));
    assert!(s.is_done());
    assert_eq!(s.received(), 1);
}

#[test]
fn dont_have_moves_the_want_block_to_another_peer() {
    let b = block(1);
    let mut s = session(&[1, 2]);
    s.want(&[*b.cid()], 0).unwrap();
    let first = want_block_target(
        &presence(&mut s, 1, *b.cid(), PresenceType::Have, 1),
        b.cid(),
    );
    assert_eq!(first, vec![1]);
    // Peer 2 also has it, but a want-block is already out.
    assert!(want_block_target(
        &presence(&mut s, 2, *b.cid(), PresenceType::Have, 2),
        b.cid()
    )
    .is_empty());
    let a = presence(&mut s, 1, *b.cid(), PresenceType::DontHave, 3);
    assert_eq!(want_block_target(&a, b.cid()), vec![2]);
}

#[test]
fn all_dont_have_falls_back_to_providers_then_dials_and_asks() {
    let b = block(1);
    let mut s = session(&[1, 2]);
    s.want(&[*b.cid()], 0).unwrap();
    presence(&mut s, 1, *b.cid(), PresenceType::DontHave, 1);
    let a = presence(&mut s, 2, *b.cid(), PresenceType::DontHave, 2);
    assert_eq!(a, vec![SessionAction::FindProviders { cid: *b.cid() }]);
    let a = s.handle(
        SessionEvent::ProvidersFound {
            cid: *b.cid(),
            providers: vec![1, 9],
        },
        3,
    );
    assert_eq!(a, vec![SessionAction::Dial { peer: 9 }]);
    let a = s.handle(
        SessionEvent::PeerConnected {
            peer: 9,
            version: ProtocolVersion::V1_2_0,
        },
        4,
    );
    let e = entries(&a);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, 9);
    assert_eq!(e[0].1.want_type, WantType::Have);
    let a = deliver(&mut s, 9, b.clone(), 5);
    assert!(a.contains(&SessionAction::Done));
}

#[test]
fn no_connected_peer_means_find_providers_now_and_rate_limited() {
    let b = block(1);
    let mut s = session(&[]);
    let a = s.want(&[*b.cid()], 0).unwrap();
    assert_eq!(a, vec![SessionAction::FindProviders { cid: *b.cid() }]);
    let a = s.handle(SessionEvent::Tick, PROVIDER_SEARCH_INTERVAL_MS - 1);
    assert!(a.is_empty(), "{a:?}");
    let a = s.handle(SessionEvent::Tick, PROVIDER_SEARCH_INTERVAL_MS);
    assert_eq!(a, vec![SessionAction::FindProviders { cid: *b.cid() }]);
}

#[test]
fn rebroadcast_after_the_interval_not_before() {
    let b = block(1);
    let mut s = session(&[1]);
    s.want(&[*b.cid()], 100).unwrap();
    assert!(s
        .handle(SessionEvent::Tick, 100 + REBROADCAST_INTERVAL_MS - 1)
        .is_empty());
    let a = s.handle(SessionEvent::Tick, 100 + REBROADCAST_INTERVAL_MS);
    let e = entries(&a);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].0, 1);
    assert_eq!(e[0].1.want_type, WantType::Have);
    assert!(a.contains(&SessionAction::FindProviders { cid: *b.cid() }));
    // A peer that took the want-block and went silent loses it at the next rebroadcast.
    let t = 100 + REBROADCAST_INTERVAL_MS;
    presence(&mut s, 1, *b.cid(), PresenceType::Have, t + 1);
    s.handle(
        SessionEvent::PeerConnected {
            peer: 2,
            version: ProtocolVersion::V1_2_0,
        },
        t + 2,
    );
    let a = s.handle(SessionEvent::Tick, t + 1 + REBROADCAST_INTERVAL_MS);
    let e = entries(&a);
    assert!(
        e.iter()
            .any(|(p, e)| *p == 2 && e.want_type == WantType::Have),
        "{e:?}"
    );
}

#[test]
fn corrupt_block_penalizes_and_asks_elsewhere() {
    let b = block(1);
    let mut s = session(&[1, 2]);
    s.want(&[*b.cid()], 0).unwrap();
    presence(&mut s, 1, *b.cid(), PresenceType::Have, 1);
    presence(&mut s, 2, *b.cid(), PresenceType::Have, 1);
    let a = s.handle(
        SessionEvent::BlockReceived {
            peer: 1,
            cid: *b.cid(),
            data: Bytes::from_static(b"not the right bytes"),
        },
        2,
    );
    assert!(a.contains(&SessionAction::Penalize {
        peer: 1,
        reason: SessionPenalty::CorruptBlock { cid: *b.cid() }
    }));
    assert_eq!(want_block_target(&a, b.cid()), vec![2]);
    assert_eq!(s.remaining(), 1);
    let a = deliver(&mut s, 2, b.clone(), 3);
    assert!(a.contains(&SessionAction::Done));
}

#[test]
fn want_blocks_spread_over_peers_that_have() {
    let blocks: Vec<Block> = (0..90).map(block).collect();
    let cids: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    let mut s = session(&[1, 2, 3]);
    s.want(&cids, 0).unwrap();
    let mut per_peer = [0usize; 4];
    for p in 1..=3u64 {
        let msg = Message {
            presences: cids
                .iter()
                .map(|c| BlockPresence {
                    cid: *c,
                    kind: PresenceType::Have,
                })
                .collect(),
            ..Message::default()
        };
        let a = s.handle(SessionEvent::MessageReceived { peer: p, msg }, 1);
        for (q, e) in entries(&a) {
            if e.want_type == WantType::Block {
                per_peer[q as usize] += 1;
            }
        }
    }
    // 90 wants, 32 at most in flight per peer: everything went out, over all three peers.
    assert_eq!(per_peer.iter().sum::<usize>(), 90);
    assert!(per_peer.iter().all(|&n| n <= WANT_BLOCKS_PER_PEER_MAX));
    assert_eq!(per_peer, [0, 32, 32, 26]);
}

#[test]
fn old_peers_get_want_block_directly() {
    let b = block(1);
    let mut s = session(&[]);
    s.handle(
        SessionEvent::PeerConnected {
            peer: 7,
            version: ProtocolVersion::V1_1_0,
        },
        0,
    );
    let a = s.want(&[*b.cid()], 0).unwrap();
    assert_eq!(want_block_target(&a, b.cid()), vec![7]);
}

#[test]
fn disconnect_of_the_want_block_peer_moves_the_want() {
    let b = block(1);
    let mut s = session(&[1, 2]);
    s.want(&[*b.cid()], 0).unwrap();
    presence(&mut s, 1, *b.cid(), PresenceType::Have, 1);
    presence(&mut s, 2, *b.cid(), PresenceType::Have, 1);
    let a = s.handle(SessionEvent::PeerDisconnected { peer: 1 }, 2);
    assert_eq!(want_block_target(&a, b.cid()), vec![2]);
}

#[test]
fn wants_limit_plus_one() {
    let cfg = SessionConfig {
        wants_max: 4,
        ..SessionConfig::default()
    };
    let mut s = Session::new(cfg);
    let cids: Vec<Cid> = (0..5).map(|i| *block(i).cid()).collect();
    s.want(&cids[..4], 0).unwrap();
    // Re-wanting a CID already wanted costs nothing.
    s.want(&cids[..1], 0).unwrap();
    assert_eq!(
        s.want(&cids[4..], 0).unwrap_err(),
        SessionError::TooManyWants { wanted: 5, max: 4 }
    );
    assert_eq!(s.remaining(), 4);
}

#[test]
fn unwanted_blocks_and_presences_are_ignored() {
    let b = block(1);
    let other = block(2);
    let mut s = session(&[1]);
    s.want(&[*b.cid()], 0).unwrap();
    assert!(deliver(&mut s, 1, other.clone(), 1).is_empty());
    assert!(presence(&mut s, 1, *other.cid(), PresenceType::Have, 1).is_empty());
    assert_eq!(s.remaining(), 1);
}

#[test]
fn many_wants_without_peers_search_one_at_a_time() {
    let cids: Vec<Cid> = (0..100).map(|i| *block(i).cid()).collect();
    let mut s = session(&[]);
    let a = s.want(&cids, 0).unwrap();
    assert_eq!(a, vec![SessionAction::FindProviders { cid: cids[0] }]);
    // The next call searches for the next want, not the same one again.
    let a = s.handle(SessionEvent::Tick, 1);
    assert_eq!(a.len(), 1);
    assert!(matches!(a[0], SessionAction::FindProviders { cid } if cid != cids[0]));
}

#[test]
fn a_failed_dial_can_be_retried() {
    let b = block(1);
    let mut s = session(&[]);
    s.want(&[*b.cid()], 0).unwrap();
    let found = SessionEvent::ProvidersFound {
        cid: *b.cid(),
        providers: vec![9],
    };
    assert_eq!(
        s.handle(found.clone(), 1),
        vec![SessionAction::Dial { peer: 9 }]
    );
    // Still dialing: no second dial.
    assert!(s.handle(found.clone(), 2).is_empty());
    s.handle(SessionEvent::DialFailed { peer: 9 }, 3);
    assert_eq!(s.handle(found, 4), vec![SessionAction::Dial { peer: 9 }]);
}

#[test]
fn a_delivering_peer_gets_want_blocks_as_room_frees_and_no_want_haves() {
    let first = block(0);
    let rest: Vec<Block> = (1..=200).map(block).collect();
    // Peer 1 delivers the first block; peer 2 has said nothing yet.
    let mut s = session(&[1, 2]);
    s.want(&[*first.cid()], 0).unwrap();
    presence(&mut s, 1, *first.cid(), PresenceType::Have, 1);
    deliver(&mut s, 1, first.clone(), 2);
    let cids: Vec<Cid> = rest.iter().map(|b| *b.cid()).collect();
    let a = s.want(&cids, 3).unwrap();
    let e = entries(&a);
    let to_1: Vec<&WantEntry> = e.iter().filter(|(p, _)| *p == 1).map(|(_, e)| e).collect();
    assert_eq!(
        to_1.len(),
        WANT_BLOCKS_PER_PEER_MAX,
        "only what fits in flight"
    );
    assert!(to_1.iter().all(|e| e.want_type == WantType::Block));
    // The peer that delivered nothing is still asked whether it has each one.
    let to_2 = e.iter().filter(|(p, _)| *p == 2).count();
    assert_eq!(to_2, 200);
    assert!(e
        .iter()
        .filter(|(p, _)| *p == 2)
        .all(|(_, e)| e.want_type == WantType::Have));
    // Each delivery frees room for one more want-block to peer 1, still no want-have.
    let sent = to_1[0].cid;
    let b = rest.iter().find(|b| *b.cid() == sent).unwrap().clone();
    let a = deliver(&mut s, 1, b, 4);
    let e: Vec<(u64, WantEntry)> = entries(&a).into_iter().filter(|(_, e)| !e.cancel).collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, 1);
    assert_eq!(e[0].1.want_type, WantType::Block);
}

#[test]
fn wants_waiting_for_a_slot_are_not_rebroadcast_while_blocks_arrive() {
    let blocks: Vec<Block> = (0..=100).map(block).collect();
    let mut s = session(&[1]);
    s.want(&[*blocks[0].cid()], 0).unwrap();
    presence(&mut s, 1, *blocks[0].cid(), PresenceType::Have, 1);
    deliver(&mut s, 1, blocks[0].clone(), 2);
    let cids: Vec<Cid> = blocks[1..].iter().map(|b| *b.cid()).collect();
    let a = s.want(&cids, 3).unwrap();
    let mut in_flight: Vec<Cid> = entries(&a).into_iter().map(|(_, e)| e.cid).collect();
    assert_eq!(in_flight.len(), WANT_BLOCKS_PER_PEER_MAX);
    // Peer 1 keeps delivering, one block per 500 ms: ticks past the interval send nothing
    // again and search for no providers.
    let mut now = 3;
    for _ in 0..8 {
        now += 500;
        let c = in_flight.remove(0);
        let b = blocks.iter().find(|b| *b.cid() == c).unwrap().clone();
        let a = deliver(&mut s, 1, b, now);
        in_flight.extend(
            entries(&a)
                .into_iter()
                .filter(|(_, e)| !e.cancel)
                .map(|(_, e)| e.cid),
        );
        let a = s.handle(SessionEvent::Tick, now + 1);
        assert!(a.is_empty(), "at {now}: {a:?}");
    }
    // Once nothing has arrived for the interval, the waiting wants are due again.
    let a = s.handle(SessionEvent::Tick, now + REBROADCAST_INTERVAL_MS);
    assert!(
        a.iter()
            .any(|a| matches!(a, SessionAction::FindProviders { .. })),
        "{a:?}"
    );
}
