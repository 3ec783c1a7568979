//! Testnet topologies as pure graphs: which node dials which, and overlay distances.
//!
//! No I/O: [`Topology::edges`] turns a shape and a node count into an edge set (deterministic,
//! seeded for [`Topology::Random`]), and [`hops`] measures the overlay distance between nodes
//! over the links that are up. The harness ([`super::Testnet`]) dials the edges.

use std::collections::{BTreeSet, VecDeque};

/// How the nodes of a testnet are linked. Every shape is connected (for `n >= 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// 0 – 1 – 2 – … – n-1.
    Line,
    /// A line closed into a circle.
    Ring,
    /// Node 0 linked to every other node.
    Star,
    /// Every pair linked.
    Full,
    /// A random spanning tree (so the graph is connected), then random extra links until the
    /// average degree reaches `degree` (or the graph is complete). Same seed, same graph.
    Random { degree: usize, seed: u64 },
}

/// An undirected link between two node indices, smaller index first.
pub type Edge = (usize, usize);

/// Orders a pair into an [`Edge`].
pub fn edge(a: usize, b: usize) -> Edge {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

impl Topology {
    /// The links of this shape over `n` nodes.
    pub fn edges(&self, n: usize) -> BTreeSet<Edge> {
        let mut out = BTreeSet::new();
        match *self {
            Topology::Line => out.extend((1..n).map(|i| (i - 1, i))),
            Topology::Ring => {
                out.extend((1..n).map(|i| (i - 1, i)));
                if n > 2 {
                    out.insert((0, n - 1));
                }
            }
            Topology::Star => out.extend((1..n).map(|i| (0, i))),
            Topology::Full => {
                for a in 0..n {
                    out.extend((a + 1..n).map(|b| (a, b)));
                }
            }
            Topology::Random { degree, seed } => {
                let mut rng = SplitMix64(seed);
                for i in 1..n {
                    out.insert(edge(rng.below(i), i));
                }
                let complete = n * n.saturating_sub(1) / 2;
                let wanted = (n * degree / 2).min(complete);
                while out.len() < wanted {
                    let (a, b) = (rng.below(n), rng.below(n));
                    if a != b {
                        out.insert(edge(a, b));
                    }
                }
            }
        }
        out
    }
}

/// Overlay distance (number of links) from `from` to the nearest node in `targets`, over
/// `edges`, visiting only nodes for which `up` is true; `None` if none is reachable. `from`
/// itself counts as distance 0 when it is a target.
pub fn hops(
    n: usize,
    edges: &BTreeSet<Edge>,
    up: impl Fn(usize) -> bool,
    from: usize,
    targets: impl Fn(usize) -> bool,
) -> Option<usize> {
    let mut adjacent = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a < n && b < n && up(a) && up(b) {
            adjacent[a].push(b);
            adjacent[b].push(a);
        }
    }
    let mut seen = vec![false; n];
    let mut queue = VecDeque::new();
    if from >= n {
        return None;
    }
    seen[from] = true;
    queue.push_back((from, 0));
    while let Some((at, d)) = queue.pop_front() {
        if targets(at) {
            return Some(d);
        }
        for &next in &adjacent[at] {
            if !seen[next] {
                seen[next] = true;
                queue.push_back((next, d + 1));
            }
        }
    }
    None
}

/// A small deterministic generator (splitmix64) for topologies and test sampling.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(n: usize, edges: &BTreeSet<Edge>) -> bool {
        (0..n).all(|t| hops(n, edges, |_| true, 0, |i| i == t).is_some())
    }

    #[test]
    fn shapes_have_their_edge_counts_and_are_connected() {
        for n in [1, 2, 3, 10, 57] {
            let line = Topology::Line.edges(n);
            assert_eq!(line.len(), n - 1);
            assert!(connected(n, &line));
            let ring = Topology::Ring.edges(n);
            assert_eq!(ring.len(), if n > 2 { n } else { n - 1 });
            let star = Topology::Star.edges(n);
            assert_eq!(star.len(), n - 1);
            assert!(star.iter().all(|&(a, _)| a == 0));
            assert_eq!(Topology::Full.edges(n).len(), n * (n - 1) / 2);
            let random = Topology::Random { degree: 4, seed: 7 }.edges(n);
            assert!(connected(n, &random), "n={n}");
            assert_eq!(random.len(), (n * 2).min(n * (n - 1) / 2).max(n - 1));
            assert!(random.iter().all(|&(a, b)| a < b && b < n));
        }
    }

    #[test]
    fn random_is_deterministic_per_seed() {
        let a = Topology::Random { degree: 3, seed: 1 }.edges(40);
        let b = Topology::Random { degree: 3, seed: 1 }.edges(40);
        let c = Topology::Random { degree: 3, seed: 2 }.edges(40);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn hops_over_live_links() {
        let line = Topology::Line.edges(5);
        assert_eq!(hops(5, &line, |_| true, 0, |i| i == 4), Some(4));
        assert_eq!(hops(5, &line, |_| true, 2, |i| i == 2), Some(0));
        // Node 2 down cuts the line.
        assert_eq!(hops(5, &line, |i| i != 2, 0, |i| i == 4), None);
        let ring = Topology::Ring.edges(5);
        assert_eq!(hops(5, &ring, |i| i != 2, 0, |i| i == 3), Some(2));
        assert_eq!(hops(5, &ring, |_| true, 0, |_| false), None);
        assert_eq!(hops(5, &ring, |_| true, 9, |_| true), None);
    }
}
