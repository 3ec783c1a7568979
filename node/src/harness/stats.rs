//! Latency and hop samples of a testnet, and their summaries (p50/p95/p99).

use std::time::Duration;

/// What one operation took, and how far (in overlay links) the data or record was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub elapsed: Duration,
    /// Overlay distance from the asking node to the nearest running node holding the root
    /// block when the operation started; `None` if none was reachable over live links.
    pub hops: Option<usize>,
}

/// Summary of a set of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Mean overlay distance over the samples that had one.
    pub hops_mean: f64,
    pub hops_max: usize,
}

impl Summary {
    /// Nearest-rank percentiles of `samples` (all zero when empty).
    pub fn of(samples: &[Sample]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        let mut times: Vec<Duration> = samples.iter().map(|s| s.elapsed).collect();
        times.sort_unstable();
        let rank = |p: usize| {
            // Nearest rank: ceil(p/100 * n), 1-based.
            let r = (p * times.len()).div_ceil(100).max(1);
            times[r.min(times.len()) - 1]
        };
        let hops: Vec<usize> = samples.iter().filter_map(|s| s.hops).collect();
        Summary {
            count: samples.len(),
            p50: rank(50),
            p95: rank(95),
            p99: rank(99),
            max: times[times.len() - 1],
            hops_mean: if hops.is_empty() {
                0.0
            } else {
                hops.iter().sum::<usize>() as f64 / hops.len() as f64
            },
            hops_max: hops.iter().copied().max().unwrap_or(0),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.1}ms p95={:.1}ms p99={:.1}ms max={:.1}ms hops mean={:.2} max={}",
            self.count,
            self.p50.as_secs_f64() * 1e3,
            self.p95.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
            self.hops_mean,
            self.hops_max
        )
    }
}

/// Every sample a testnet recorded, by operation.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub fetches: Vec<Sample>,
    pub find_providers: Vec<Sample>,
    /// DHT announcements (`provide`, also run by `add_bytes`/`add_path` when linked).
    pub provides: Vec<Sample>,
    /// Start-up: booting every node (listeners bound), dialing the topology and waiting for
    /// identify on every link.
    pub boot: Duration,
    pub link: Duration,
}

impl Stats {
    pub fn fetch_summary(&self) -> Summary {
        Summary::of(&self.fetches)
    }

    pub fn find_providers_summary(&self) -> Summary {
        Summary::of(&self.find_providers)
    }

    pub fn provide_summary(&self) -> Summary {
        Summary::of(&self.provides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Sample> = (1..=100)
            .map(|i| Sample {
                elapsed: ms(i),
                hops: Some((i % 3) as usize),
            })
            .collect();
        let s = Summary::of(&samples);
        assert_eq!(
            (s.count, s.p50, s.p95, s.p99, s.max),
            (100, ms(50), ms(95), ms(99), ms(100))
        );
        assert_eq!(s.hops_max, 2);
        // i % 3 over 1..=100: 34 ones and 33 twos, sum 100 over 100 samples.
        assert!((s.hops_mean - 1.0).abs() < 1e-9, "{}", s.hops_mean);
        let one = Summary::of(&[Sample {
            elapsed: ms(7),
            hops: None,
        }]);
        assert_eq!((one.p50, one.p99, one.hops_max), (ms(7), ms(7), 0));
        assert_eq!(Summary::of(&[]).count, 0);
    }
}
