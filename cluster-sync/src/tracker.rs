//! The pin tracker: what this peer must pin or unpin, and how far it got. Pure: events (the
//! pinset's changes, results of pin/unpin operations, ticks) in, operations to start out.
//!
//! States follow ipfs-cluster's: `queued` → `pinning` → `pinned`, or `pin_error` (retried with
//! exponential backoff up to `attempts_max`, then left for `recover`); `unpin_queued` →
//! `unpinning` → gone, or `unpin_error`; `remote` for pins allocated to other peers. At most
//! `concurrency` operations run at once; the queue is bounded (`TRACKER_QUEUE_MAX`).

use std::collections::{BTreeMap, VecDeque};

use cid::Cid;

use crate::types::{PeerKey, Pin, PinMode};

/// ipfs-cluster's `concurrent_pins` default.
pub const PIN_CONCURRENCY_DEFAULT: usize = 10;
/// Attempts before a pin stays in `pin_error` until `recover`.
pub const PIN_ATTEMPTS_MAX_DEFAULT: u32 = 3;
pub const PIN_RETRY_BACKOFF_MS_BASE: u64 = 1_000;
pub const PIN_RETRY_BACKOFF_MS_MAX: u64 = 60_000;
/// Operations waiting to start (ipfs-cluster's `max_pin_queue_size`).
pub const TRACKER_QUEUE_MAX: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinState {
    Queued,
    Pinning,
    Pinned,
    PinError,
    UnpinQueued,
    Unpinning,
    UnpinError,
    Remote,
}

impl PinState {
    /// ipfs-cluster's name for the state.
    pub fn as_str(&self) -> &'static str {
        match self {
            PinState::Queued => "pin_queued",
            PinState::Pinning => "pinning",
            PinState::Pinned => "pinned",
            PinState::PinError => "pin_error",
            PinState::UnpinQueued => "unpin_queued",
            PinState::Unpinning => "unpinning",
            PinState::UnpinError => "unpin_error",
            PinState::Remote => "remote",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub state: PinState,
    pub mode: PinMode,
    pub attempts: u32,
    pub retry_at_ms: Option<u64>,
    pub error: Option<String>,
    /// What the pinset wants once the running operation ends.
    want_pinned: bool,
}

#[derive(Clone, Debug)]
pub enum TrackerEvent {
    /// The pinset has (or changed) this pin.
    Pinned(Pin),
    /// The pinset dropped this CID.
    Unpinned(Cid),
    PinDone {
        cid: Cid,
        result: Result<(), String>,
    },
    UnpinDone {
        cid: Cid,
        result: Result<(), String>,
    },
    Recover(Cid),
    RecoverAll,
    Tick,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerAction {
    StartPin { cid: Cid, mode: PinMode },
    StartUnpin { cid: Cid },
}

#[derive(Clone, Debug)]
pub struct TrackerConfig {
    pub concurrency: usize,
    pub attempts_max: u32,
    pub queue_max: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            concurrency: PIN_CONCURRENCY_DEFAULT,
            attempts_max: PIN_ATTEMPTS_MAX_DEFAULT,
            queue_max: TRACKER_QUEUE_MAX,
        }
    }
}

pub struct Tracker {
    me: PeerKey,
    cfg: TrackerConfig,
    pins: BTreeMap<Cid, Tracked>,
    queue: VecDeque<Cid>,
    running: usize,
}

fn backoff_ms(attempts: u32) -> u64 {
    PIN_RETRY_BACKOFF_MS_BASE
        .saturating_mul(1u64 << attempts.min(20))
        .min(PIN_RETRY_BACKOFF_MS_MAX)
}

impl Tracker {
    pub fn new(me: PeerKey, cfg: TrackerConfig) -> Tracker {
        Tracker {
            me,
            cfg,
            pins: BTreeMap::new(),
            queue: VecDeque::new(),
            running: 0,
        }
    }

    pub fn status(&self, cid: &Cid) -> Option<&Tracked> {
        self.pins.get(cid)
    }

    pub fn statuses(&self) -> impl Iterator<Item = (&Cid, &Tracked)> {
        self.pins.iter()
    }

    pub fn running(&self) -> usize {
        self.running
    }

    fn enqueue(&mut self, cid: Cid, state: PinState, mode: PinMode, want_pinned: bool) {
        if self.queue.len() >= self.cfg.queue_max {
            let error = Some("pin queue full".to_string());
            let state = if want_pinned {
                PinState::PinError
            } else {
                PinState::UnpinError
            };
            self.pins.insert(
                cid,
                Tracked {
                    state,
                    mode,
                    attempts: 0,
                    retry_at_ms: None,
                    error,
                    want_pinned,
                },
            );
            return;
        }
        self.pins.insert(
            cid,
            Tracked {
                state,
                mode,
                attempts: 0,
                retry_at_ms: None,
                error: None,
                want_pinned,
            },
        );
        self.queue.push_back(cid);
    }

    pub fn handle(&mut self, ev: TrackerEvent, now_ms: u64) -> Vec<TrackerAction> {
        match ev {
            TrackerEvent::Pinned(pin) => self.on_pinned(pin, now_ms),
            TrackerEvent::Unpinned(cid) => self.on_unpinned(cid),
            TrackerEvent::PinDone { cid, result } => self.on_done(cid, result, true, now_ms),
            TrackerEvent::UnpinDone { cid, result } => self.on_done(cid, result, false, now_ms),
            TrackerEvent::Recover(cid) => self.recover(&cid),
            TrackerEvent::RecoverAll => {
                let errs: Vec<Cid> = self
                    .pins
                    .iter()
                    .filter(|(_, t)| matches!(t.state, PinState::PinError | PinState::UnpinError))
                    .map(|(c, _)| *c)
                    .collect();
                for c in errs {
                    self.recover(&c);
                }
            }
            TrackerEvent::Tick => self.retry_due(now_ms),
        }
        self.start(now_ms)
    }

    fn on_pinned(&mut self, pin: Pin, now_ms: u64) {
        let mine = pin.spec.allocated_to(&self.me) && !pin.spec.expired(now_ms);
        let mode = pin.spec.mode;
        let cur = self.pins.get(&pin.cid).map(|t| (t.state, t.mode));
        match (mine, cur) {
            (true, None) | (true, Some((PinState::Remote, _))) => {
                self.enqueue(pin.cid, PinState::Queued, mode, true)
            }
            (true, Some((PinState::Pinned, m))) if m != mode => {
                self.enqueue(pin.cid, PinState::Queued, mode, true)
            }
            (true, Some((PinState::UnpinQueued | PinState::UnpinError, _))) => {
                self.enqueue(pin.cid, PinState::Queued, mode, true)
            }
            (true, Some(_)) => {
                if let Some(t) = self.pins.get_mut(&pin.cid) {
                    t.want_pinned = true;
                    t.mode = mode;
                }
            }
            (false, None) => {
                self.pins.insert(
                    pin.cid,
                    Tracked {
                        state: PinState::Remote,
                        mode,
                        attempts: 0,
                        retry_at_ms: None,
                        error: None,
                        want_pinned: false,
                    },
                );
            }
            (false, Some(_)) => self.drop_local(pin.cid, true),
        }
    }

    fn on_unpinned(&mut self, cid: Cid) {
        self.drop_local(cid, false);
    }

    /// This peer should no longer hold `cid`; `remote`: the pin lives on elsewhere.
    fn drop_local(&mut self, cid: Cid, remote: bool) {
        let Some(t) = self.pins.get_mut(&cid) else {
            return;
        };
        match t.state {
            PinState::Remote | PinState::Queued | PinState::PinError if !remote => {
                self.pins.remove(&cid);
            }
            PinState::Remote | PinState::Queued | PinState::PinError => {
                t.state = PinState::Remote;
                t.want_pinned = false;
            }
            PinState::Pinning | PinState::Unpinning => t.want_pinned = false,
            PinState::Pinned | PinState::UnpinError | PinState::UnpinQueued => {
                let mode = t.mode;
                self.enqueue(cid, PinState::UnpinQueued, mode, false);
            }
        }
    }

    fn on_done(&mut self, cid: Cid, result: Result<(), String>, was_pin: bool, now_ms: u64) {
        let Some(t) = self.pins.get_mut(&cid) else {
            return;
        };
        let expected = if was_pin {
            PinState::Pinning
        } else {
            PinState::Unpinning
        };
        if t.state != expected {
            return;
        }
        self.running = self.running.saturating_sub(1);
        match (was_pin, result) {
            (true, Ok(())) => {
                if t.want_pinned {
                    *t = Tracked {
                        state: PinState::Pinned,
                        retry_at_ms: None,
                        error: None,
                        attempts: 0,
                        ..t.clone()
                    };
                } else {
                    let mode = t.mode;
                    self.enqueue(cid, PinState::UnpinQueued, mode, false);
                }
            }
            (false, Ok(())) => {
                if t.want_pinned {
                    let mode = t.mode;
                    self.enqueue(cid, PinState::Queued, mode, true);
                } else {
                    self.pins.remove(&cid);
                }
            }
            (pin, Err(e)) => {
                t.attempts += 1;
                t.state = if pin {
                    PinState::PinError
                } else {
                    PinState::UnpinError
                };
                t.error = Some(e);
                t.retry_at_ms =
                    (t.attempts < self.cfg.attempts_max).then(|| now_ms + backoff_ms(t.attempts));
            }
        }
    }

    fn recover(&mut self, cid: &Cid) {
        let Some(t) = self.pins.get(cid) else { return };
        let mode = t.mode;
        match t.state {
            PinState::PinError => self.enqueue(*cid, PinState::Queued, mode, true),
            PinState::UnpinError => self.enqueue(*cid, PinState::UnpinQueued, mode, false),
            _ => {}
        }
    }

    fn retry_due(&mut self, now_ms: u64) {
        let due: Vec<(Cid, PinState, PinMode, u32)> = self
            .pins
            .iter()
            .filter(|(_, t)| t.retry_at_ms.is_some_and(|r| r <= now_ms))
            .map(|(c, t)| (*c, t.state, t.mode, t.attempts))
            .collect();
        for (cid, state, mode, attempts) in due {
            let (next, want) = match state {
                PinState::PinError => (PinState::Queued, true),
                PinState::UnpinError => (PinState::UnpinQueued, false),
                _ => continue,
            };
            self.enqueue(cid, next, mode, want);
            if let Some(t) = self.pins.get_mut(&cid) {
                t.attempts = attempts;
            }
        }
    }

    fn start(&mut self, _now_ms: u64) -> Vec<TrackerAction> {
        let mut out = Vec::new();
        while self.running < self.cfg.concurrency {
            let Some(cid) = self.queue.pop_front() else {
                break;
            };
            let Some(t) = self.pins.get_mut(&cid) else {
                continue;
            };
            match t.state {
                PinState::Queued => {
                    t.state = PinState::Pinning;
                    out.push(TrackerAction::StartPin { cid, mode: t.mode });
                }
                PinState::UnpinQueued => {
                    t.state = PinState::Unpinning;
                    out.push(TrackerAction::StartUnpin { cid });
                }
                // Stale queue entry (the pin moved on): skip.
                _ => continue,
            }
            self.running += 1;
        }
        out
    }
}
