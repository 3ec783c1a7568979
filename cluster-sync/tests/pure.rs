//! The allocator, the pin tracker and state export/import.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};

use ipfs_kit_cluster_sync::allocator::{AllocError, Allocator, Metric, METRIC_TAGS_MAX};
use ipfs_kit_cluster_sync::export::{export, import, ExportError};
use ipfs_kit_cluster_sync::limits::EXPORT_LINE_BYTES_MAX;
use ipfs_kit_cluster_sync::sim::sim_cid;
use ipfs_kit_cluster_sync::tracker::{
    PinState, Tracker, TrackerAction, TrackerConfig, TrackerEvent,
};
use ipfs_kit_cluster_sync::{
    keypair_from_secret, Event, PeerKey, Pin, PinMode, PinSpec, Replica, ReplicaConfig,
};

fn pk(n: u8) -> PeerKey {
    PeerKey(keypair_from_secret([n; 32]).unwrap().public().to_bytes())
}

fn metric(n: u8, free: u64, group: &str, expire: u64) -> Metric {
    Metric {
        peer: pk(n),
        free_bytes: free,
        tags: BTreeMap::from([("group".to_string(), group.to_string())]),
        expire_at_ms: expire,
    }
}

fn rf(min: i32, max: i32) -> PinSpec {
    PinSpec {
        replication_factor_min: min,
        replication_factor_max: max,
        ..PinSpec::default()
    }
}

#[test]
fn allocator_spreads_over_groups_then_free_space() {
    let mut a = Allocator::new(vec!["group".into()]);
    a.observe(metric(1, 100, "a", 1_000)).unwrap();
    a.observe(metric(2, 900, "a", 1_000)).unwrap();
    a.observe(metric(3, 50, "b", 1_000)).unwrap();
    a.observe(metric(4, 500, "b", 1_000)).unwrap();
    let got = a.allocate(&rf(2, 2), &[], 0, &mut HashMap::new()).unwrap();
    assert_eq!(got, vec![pk(2), pk(4)], "one per group, the freest of each");
    let three = a.allocate(&rf(3, 3), &[], 0, &mut HashMap::new()).unwrap();
    assert_eq!(three.len(), 3);
    assert_eq!(
        a.allocate(&rf(-1, -1), &[], 0, &mut HashMap::new())
            .unwrap(),
        vec![],
        "-1: everywhere"
    );
    assert_eq!(
        a.allocate(&rf(5, 5), &[], 0, &mut HashMap::new()),
        Err(AllocError::NotEnoughPeers {
            needed: 5,
            available: 4
        })
    );
    // User allocations come first.
    let user = PinSpec {
        user_allocations: vec![pk(3)],
        ..rf(1, 1)
    };
    assert_eq!(
        a.allocate(&user, &[], 0, &mut HashMap::new()).unwrap(),
        vec![pk(3)]
    );
    // Many allocations at once balance over peers.
    let mut load = HashMap::new();
    let mut count: HashMap<PeerKey, u32> = HashMap::new();
    for _ in 0..100 {
        for p in a.allocate(&rf(1, 1), &[], 0, &mut load).unwrap() {
            *count.entry(p).or_default() += 1;
        }
    }
    assert!(
        count[&pk(2)] > count[&pk(4)] && count[&pk(4)] > count[&pk(1)],
        "{count:?}"
    );
    // Bounds.
    let mut m = metric(9, 1, "x", 10);
    for i in 0..=METRIC_TAGS_MAX {
        m.tags.insert(format!("t{i}"), String::new());
    }
    assert!(matches!(a.observe(m), Err(AllocError::TooManyTags(_))));
}

#[test]
fn expired_metrics_mean_peer_down_and_pins_are_reallocated() {
    let mut a = Allocator::new(vec![]);
    a.observe(metric(1, 100, "", 10_000)).unwrap();
    a.observe(metric(2, 200, "", 5_000)).unwrap();
    a.observe(metric(3, 300, "", 10_000)).unwrap();
    let mut r = Replica::new(
        keypair_from_secret([1; 32]).unwrap(),
        [],
        ReplicaConfig::default(),
    );
    let c = sim_cid("p", 1);
    let allocs = a.allocate(&rf(2, 2), &[], 0, &mut HashMap::new()).unwrap();
    assert_eq!(allocs, vec![pk(3), pk(2)]);
    r.handle(
        Event::Pin(Pin {
            cid: c,
            spec: PinSpec {
                allocations: allocs,
                ..rf(2, 2)
            },
        }),
        0,
    );
    r.handle(Event::Flush, 0);
    assert!(
        a.repairs(r.state(), 1_000).is_empty(),
        "nothing to repair while all are live"
    );
    assert_eq!(a.expire(6_000), vec![pk(2)]);
    let fixes = a.repairs(r.state(), 6_000);
    assert_eq!(fixes.len(), 1);
    assert_eq!(
        fixes[0].spec.allocations,
        vec![pk(3), pk(1)],
        "the live one kept, the down one replaced"
    );
    r.handle(Event::Pin(fixes[0].clone()), 6_000);
    r.handle(Event::Flush, 6_000);
    assert!(a.repairs(r.state(), 6_000).is_empty());
}

fn pin(i: u64, allocs: Vec<PeerKey>) -> Pin {
    Pin {
        cid: sim_cid("k", i),
        spec: PinSpec {
            allocations: allocs,
            ..PinSpec::default()
        },
    }
}

#[test]
fn tracker_bounds_concurrency_and_follows_states() {
    let me = pk(1);
    let mut t = Tracker::new(
        me,
        TrackerConfig {
            concurrency: 2,
            ..TrackerConfig::default()
        },
    );
    let mut started = Vec::new();
    for i in 0..5 {
        started.extend(t.handle(TrackerEvent::Pinned(pin(i, vec![])), 0));
    }
    assert_eq!(started.len(), 2, "at most `concurrency` pins run");
    assert_eq!(t.status(&sim_cid("k", 0)).unwrap().state, PinState::Pinning);
    assert_eq!(t.status(&sim_cid("k", 4)).unwrap().state, PinState::Queued);
    let next = t.handle(
        TrackerEvent::PinDone {
            cid: sim_cid("k", 0),
            result: Ok(()),
        },
        1,
    );
    assert_eq!(
        next,
        vec![TrackerAction::StartPin {
            cid: sim_cid("k", 2),
            mode: PinMode::Recursive
        }]
    );
    assert_eq!(t.status(&sim_cid("k", 0)).unwrap().state, PinState::Pinned);
    // Allocated elsewhere: remote, nothing to do.
    assert!(t
        .handle(TrackerEvent::Pinned(pin(9, vec![pk(2)])), 1)
        .is_empty());
    assert_eq!(t.status(&sim_cid("k", 9)).unwrap().state, PinState::Remote);
    // Unpinned from the pinset: unpin it, then forget it.
    t.handle(
        TrackerEvent::PinDone {
            cid: sim_cid("k", 1),
            result: Ok(()),
        },
        1,
    );
    t.handle(
        TrackerEvent::PinDone {
            cid: sim_cid("k", 2),
            result: Ok(()),
        },
        1,
    );
    t.handle(
        TrackerEvent::PinDone {
            cid: sim_cid("k", 3),
            result: Ok(()),
        },
        1,
    );
    let un = t.handle(TrackerEvent::Unpinned(sim_cid("k", 0)), 2);
    assert!(un.contains(&TrackerAction::StartUnpin {
        cid: sim_cid("k", 0)
    }));
    t.handle(
        TrackerEvent::UnpinDone {
            cid: sim_cid("k", 0),
            result: Ok(()),
        },
        3,
    );
    assert!(t.status(&sim_cid("k", 0)).is_none());
    // Re-allocated away from us: unpin, then remote.
    t.handle(TrackerEvent::Pinned(pin(1, vec![pk(2)])), 4);
    assert_eq!(
        t.status(&sim_cid("k", 1)).unwrap().state,
        PinState::Unpinning
    );
}

#[test]
fn tracker_retries_with_backoff_then_waits_for_recover() {
    let mut t = Tracker::new(
        pk(1),
        TrackerConfig {
            attempts_max: 2,
            ..TrackerConfig::default()
        },
    );
    let c = sim_cid("k", 1);
    t.handle(TrackerEvent::Pinned(pin(1, vec![])), 0);
    t.handle(
        TrackerEvent::PinDone {
            cid: c,
            result: Err("no providers".into()),
        },
        0,
    );
    let st = t.status(&c).unwrap().clone();
    assert_eq!(st.state, PinState::PinError);
    let retry_at = st.retry_at_ms.unwrap();
    assert!(
        t.handle(TrackerEvent::Tick, retry_at - 1).is_empty(),
        "not before the backoff"
    );
    assert_eq!(
        t.handle(TrackerEvent::Tick, retry_at).len(),
        1,
        "retried after it"
    );
    t.handle(
        TrackerEvent::PinDone {
            cid: c,
            result: Err("no providers".into()),
        },
        retry_at,
    );
    let st = t.status(&c).unwrap();
    assert_eq!(
        (st.state, st.attempts, st.retry_at_ms),
        (PinState::PinError, 2, None),
        "gave up"
    );
    assert!(t.handle(TrackerEvent::Tick, u64::MAX / 2).is_empty());
    assert_eq!(
        t.handle(TrackerEvent::Recover(c), 10),
        vec![TrackerAction::StartPin {
            cid: c,
            mode: PinMode::Recursive
        }]
    );
    t.handle(
        TrackerEvent::PinDone {
            cid: c,
            result: Ok(()),
        },
        11,
    );
    assert_eq!(t.status(&c).unwrap().state, PinState::Pinned);
    assert_eq!(PinState::Pinned.as_str(), "pinned");
}

#[test]
fn export_import_round_trip_and_line_limit() {
    let mut r = Replica::new(
        keypair_from_secret([1; 32]).unwrap(),
        [],
        ReplicaConfig::default(),
    );
    let spec = PinSpec {
        name: "photos".into(),
        mode: PinMode::Direct,
        replication_factor_min: 1,
        replication_factor_max: 2,
        user_allocations: vec![pk(2)],
        allocations: vec![pk(2), pk(3)],
        expire_at_ms: Some(1_700_000_000_000),
        metadata: BTreeMap::from([("owner".into(), "ana".into())]),
    };
    r.handle(
        Event::Pin(Pin {
            cid: sim_cid("e", 1),
            spec: spec.clone(),
        }),
        0,
    );
    r.handle(
        Event::Pin(Pin {
            cid: sim_cid("e", 2),
            spec: PinSpec::default(),
        }),
        0,
    );
    r.handle(Event::Flush, 0);
    let mut out = Vec::new();
    assert_eq!(export(r.state(), &mut out).unwrap(), 2);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(
        text.contains("\"mode\":\"direct\"") && text.contains("12D3KooW"),
        "{text}"
    );
    let pins = import(out.as_slice()).unwrap();
    let mut r2 = Replica::new(
        keypair_from_secret([2; 32]).unwrap(),
        [],
        ReplicaConfig::default(),
    );
    for p in pins {
        r2.handle(Event::Pin(p), 0);
    }
    r2.handle(Event::Flush, 0);
    assert_eq!(r2.state().sorted(), r.state().sorted());
    // A line of limit+1 bytes is refused; one of exactly the limit is read.
    let long = format!(
        "{{\"cid\":\"{}\",\"name\":\"{}\"}}",
        sim_cid("e", 1),
        "x".repeat(EXPORT_LINE_BYTES_MAX)
    );
    assert!(matches!(
        import(long.as_bytes()),
        Err(ExportError::LineTooLong { line: 1 })
    ));
    let bad = format!(
        "{{\"cid\":\"{}\",\"replication_factor_min\":0}}\n",
        sim_cid("e", 1)
    );
    assert!(matches!(
        import(bad.as_bytes()),
        Err(ExportError::Pin { line: 1, .. })
    ));
}
