//! The merged pinset: an add-wins observed-remove set with a causal context.
//!
//! Every pin of a CID is a *tag*: the id of the delta that added it, its priority and its spec.
//! A CID is pinned while it has at least one tag. An op lists the tags its writer had observed;
//! they are removed (an unpin) or replaced (a pin). A tag the writer had not seen (a concurrent
//! pin) survives, so a concurrent pin and unpin leave the CID pinned: add wins. When several
//! tags survive, the spec shown is the one with the highest (priority, delta id).
//!
//! Deltas are applied only after all their ancestors, and each once (the *context* holds the id
//! of every delta applied or covered by a snapshot), so no tombstones are kept: an unpin removes
//! tags that are already present. Joining a snapshot uses the context the other way round: a tag
//! whose delta the snapshot covers but which the snapshot no longer holds was removed there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cid::Cid;

use crate::codec::Op;
use crate::types::{DeltaId, PeerKey, Pin, PinSpec};

/// One live pin of a CID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub delta: DeltaId,
    pub priority: u64,
    pub spec: Arc<PinSpec>,
}

/// What a merge changed, for the pin tracker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// CIDs newly pinned or whose winning spec changed.
    pub pinned: Vec<Pin>,
    /// CIDs no longer pinned.
    pub unpinned: Vec<Cid>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.pinned.is_empty() && self.unpinned.is_empty()
    }
}

#[derive(Debug, Default, Clone)]
pub struct PinSet {
    entries: HashMap<Cid, Vec<Tag>>,
    context: HashSet<DeltaId>,
    /// Author of every delta that added a tag (snapshots carry it so a receiver can filter).
    authors: HashMap<DeltaId, PeerKey>,
    default_spec: Arc<PinSpec>,
}

fn winner(tags: &[Tag]) -> Option<&Tag> {
    tags.iter().max_by_key(|t| (t.priority, t.delta))
}

impl PinSet {
    pub fn new() -> PinSet {
        PinSet::default()
    }

    /// Pinned CIDs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Deltas applied or covered.
    pub fn context(&self) -> &HashSet<DeltaId> {
        &self.context
    }

    pub fn contains_delta(&self, id: &DeltaId) -> bool {
        self.context.contains(id)
    }

    /// The winning spec of a pinned CID.
    pub fn get(&self, cid: &Cid) -> Option<&PinSpec> {
        self.entries
            .get(cid)
            .and_then(|t| winner(t))
            .map(|t| &*t.spec)
    }

    /// Live tags of a CID (the ids an unpin or re-pin supersedes).
    pub fn tags(&self, cid: &Cid) -> &[Tag] {
        self.entries.get(cid).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Every pinned CID with its winning spec (unordered).
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &PinSpec)> {
        self.entries
            .iter()
            .filter_map(|(c, t)| winner(t).map(|w| (c, &*w.spec)))
    }

    /// Every (cid, tag) pair, for snapshots.
    pub fn iter_tags(&self) -> impl Iterator<Item = (&Cid, &Tag)> {
        self.entries
            .iter()
            .flat_map(|(c, ts)| ts.iter().map(move |t| (c, t)))
    }

    /// The state as a sorted list, for comparing replicas.
    pub fn sorted(&self) -> Vec<(Cid, PinSpec)> {
        let mut v: Vec<(Cid, PinSpec)> = self.iter().map(|(c, s)| (*c, s.clone())).collect();
        v.sort_unstable_by_key(|x| x.0);
        v
    }

    fn intern(&self, spec: PinSpec) -> Arc<PinSpec> {
        if spec == *self.default_spec {
            self.default_spec.clone()
        } else {
            Arc::new(spec)
        }
    }

    /// Record a delta as seen without applying ops (a refused delta resolved as empty).
    pub fn mark_seen(&mut self, id: DeltaId) {
        self.context.insert(id);
    }

    /// Apply the ops of delta `id` (all of whose ancestors are applied). Idempotent per id.
    pub fn apply(
        &mut self,
        id: DeltaId,
        author: PeerKey,
        priority: u64,
        ops: &[Op],
        changes: &mut Changes,
    ) {
        if !self.context.insert(id) {
            return;
        }
        if ops.iter().any(|o| o.pin.is_some()) {
            self.authors.insert(id, author);
        }
        for op in ops {
            let before = self.get(&op.cid).cloned();
            let spec = op.pin.clone().map(|s| self.intern(s));
            let tags = self.entries.entry(op.cid).or_default();
            tags.retain(|t| !op.removes.contains(&t.delta));
            if let Some(spec) = spec {
                if !tags.iter().any(|t| t.delta == id) {
                    tags.push(Tag {
                        delta: id,
                        priority,
                        spec,
                    });
                }
            }
            if tags.is_empty() {
                self.entries.remove(&op.cid);
            }
            self.note_change(op.cid, before, changes);
        }
    }

    fn note_change(&self, cid: Cid, before: Option<PinSpec>, changes: &mut Changes) {
        let after = self.get(&cid);
        match (before, after) {
            (Some(_), None) => changes.unpinned.push(cid),
            (b, Some(a)) if b.as_ref() != Some(a) => changes.pinned.push(Pin {
                cid,
                spec: a.clone(),
            }),
            _ => {}
        }
    }

    /// Join with a snapshot's state: `(cid, tag)` pairs it holds and the context it covers.
    /// `(ours ∩ theirs) ∪ (ours \ their context) ∪ (theirs \ our context)`.
    pub fn join(
        &mut self,
        their_tags: Vec<(Cid, Tag, PeerKey)>,
        their_context: &HashSet<DeltaId>,
        changes: &mut Changes,
    ) {
        let mut theirs: HashMap<Cid, Vec<Tag>> = HashMap::new();
        for (c, t, author) in their_tags {
            self.authors.insert(t.delta, author);
            theirs.entry(c).or_default().push(t);
        }
        let mut touched: HashSet<Cid> = HashSet::new();
        // Our tags that they covered but no longer hold were removed there.
        let mut removals: Vec<(Cid, DeltaId)> = Vec::new();
        for (cid, tags) in &self.entries {
            for t in tags {
                if their_context.contains(&t.delta)
                    && !theirs
                        .get(cid)
                        .is_some_and(|v| v.iter().any(|x| x.delta == t.delta))
                {
                    removals.push((*cid, t.delta));
                }
            }
        }
        let mut before: HashMap<Cid, Option<PinSpec>> = HashMap::new();
        for (cid, d) in removals {
            before.entry(cid).or_insert_with(|| self.get(&cid).cloned());
            if let Some(v) = self.entries.get_mut(&cid) {
                v.retain(|t| t.delta != d);
                if v.is_empty() {
                    self.entries.remove(&cid);
                }
            }
            touched.insert(cid);
        }
        // Their tags we have not seen are new here.
        for (cid, tags) in theirs {
            for mut t in tags {
                if self.context.contains(&t.delta) {
                    continue;
                }
                before.entry(cid).or_insert_with(|| self.get(&cid).cloned());
                t.spec = self.intern((*t.spec).clone());
                let v = self.entries.entry(cid).or_default();
                if !v.iter().any(|x| x.delta == t.delta) {
                    v.push(t);
                }
                touched.insert(cid);
            }
        }
        self.context.extend(their_context.iter().copied());
        for cid in touched {
            let b = before.remove(&cid).flatten();
            self.note_change(cid, b, changes);
        }
    }

    /// The author of a delta that added tags.
    pub fn author(&self, id: &DeltaId) -> Option<PeerKey> {
        self.authors.get(id).copied()
    }

    /// Approximate heap bytes held (for the simulation's memory bound).
    pub fn approx_bytes(&self) -> usize {
        self.entries.len() * 160 + self.context.len() * 48
    }
}
