//! The data pool: a fixed set of threads, one per core, for the CPU-bound work of moving
//! blocks — hashing the blocks of a received bitswap frame, reading and framing the blocks a
//! peer asked for. (A fetch's writes went here too while they were copies into the page cache;
//! now that they wait for the disk, they run on tokio's blocking pool.)
//!
//! That work used to run on tokio's blocking pool, which starts a new thread whenever every
//! thread it has is busy: during a 1 GiB fetch between two nodes on two cores it ran nine
//! threads, each woken a few hundred times a second, and the kernel preempted the runtime's
//! workers (the connection tasks that feed the work) ~780 times a second each to run them.
//! Jobs that queue behind one thread per core instead: the same fetch moved ~9% faster, at
//! 182-187% of the two cores instead of 174-181% (benches/README.md, "Session 14"). tokio's
//! blocking pool stays for work that waits rather than computes (reads that may go to a remote
//! storage tier, file I/O of the API).
//!
//! One pool per process, shared by every node in it (the in-process harness runs many), made
//! on first use. Jobs run in the order they were queued. A job that panics loses only its own
//! result ([`Canceled`]); its thread goes on with the next job.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};

use futures::channel::oneshot;

/// Most threads the pool starts, whatever the core count says.
pub const DATA_THREADS_MAX: usize = 64;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    /// Jobs not yet started, oldest first. A mutex and a condition variable rather than a
    /// channel that spins before it sleeps: an idle thread must cost no CPU, since the
    /// runtime's workers need every cycle of the cores during a transfer.
    queue: Mutex<VecDeque<Job>>,
    queued: Condvar,
    threads: usize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    let mut made = false;
    let pool = POOL.get_or_init(|| {
        made = true;
        Pool {
            queue: Mutex::new(VecDeque::new()),
            queued: Condvar::new(),
            threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(DATA_THREADS_MAX),
        }
    });
    if made {
        start_threads(pool);
    }
    pool
}

/// Starts the pool's threads; runs once, right after the pool is made.
fn start_threads(pool: &'static Pool) {
    let mut started = 0;
    for i in 0..pool.threads {
        match std::thread::Builder::new()
            .name(format!("ipfs-kit-data-{i}"))
            .spawn(move || run(pool))
        {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(error = %e, "data pool: a thread did not start"),
        }
    }
    if started == 0 {
        // Nobody would run the queue: from now on spawn() runs jobs in place, and what other
        // threads queued meanwhile runs here. The flag is set under the queue's lock, where
        // `queue` checks it, so no job is left behind.
        let orphans = {
            let mut queue = pool.queue.lock().unwrap_or_else(|p| p.into_inner());
            STARTED_NONE.store(true, Ordering::Release);
            std::mem::take(&mut *queue)
        };
        for job in orphans {
            job();
        }
    }
}

/// Set when no thread could start.
static STARTED_NONE: AtomicBool = AtomicBool::new(false);

/// A pool thread: runs queued jobs for the life of the process.
fn run(pool: &'static Pool) {
    loop {
        let job = {
            let mut queue = pool.queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(job) = queue.pop_front() {
                    break job;
                }
                queue = pool.queued.wait(queue).unwrap_or_else(|p| p.into_inner());
            }
        };
        job();
    }
}

/// Threads the pool runs (0 when none could start: then [`spawn`] runs jobs in place).
pub fn threads() -> usize {
    let pool = pool();
    if STARTED_NONE.load(Ordering::Acquire) {
        0
    } else {
        pool.threads
    }
}

/// A job queued on the pool did not finish: it panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a data pool job panicked")]
pub struct Canceled;

/// The result of a job queued with [`spawn`]. Dropping it does not stop the job.
#[must_use = "the job runs either way; this only carries its result"]
pub struct JobHandle<T>(oneshot::Receiver<T>);

impl<T> Future for JobHandle<T> {
    type Output = Result<T, Canceled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_err(|_| Canceled)
    }
}

/// Queues `work` on the pool; it starts as soon as a thread is free, whether or not the
/// handle is polled.
pub fn spawn<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> JobHandle<T> {
    let (tx, rx) = oneshot::channel();
    queue(Box::new(move || {
        // On a panic `tx` is dropped and the handle reports `Canceled`.
        if let Ok(v) = std::panic::catch_unwind(AssertUnwindSafe(work)) {
            let _ = tx.send(v);
        }
    }));
    JobHandle(rx)
}

/// Queues `work`, which reports its outcome itself (a panic in it is caught and dropped).
pub fn spawn_detached(work: impl FnOnce() + Send + 'static) {
    queue(Box::new(move || {
        let _ = std::panic::catch_unwind(AssertUnwindSafe(work));
    }));
}

/// Hands `job` (which must not unwind) to a thread, or runs it here when the pool has none.
fn queue(job: Job) {
    let pool = pool();
    let mut queue = pool.queue.lock().unwrap_or_else(|p| p.into_inner());
    if STARTED_NONE.load(Ordering::Acquire) {
        drop(queue);
        job();
    } else {
        queue.push_back(job);
        drop(queue);
        pool.queued.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_returns_their_results() {
        let handles: Vec<_> = (0..100u64).map(|i| spawn(move || i * i)).collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await, Ok((i * i) as u64));
        }
    }

    #[test]
    fn a_detached_job_runs() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn_detached(move || tx.send(5u8).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(5));
    }

    #[tokio::test]
    async fn a_panicking_job_reports_canceled_and_the_pool_goes_on() {
        let n = threads().max(1);
        // More panics than threads: every thread survives its own.
        let bad: Vec<_> = (0..n * 2)
            .map(|_| spawn(|| -> u8 { panic!("job fails") }))
            .collect();
        for h in bad {
            assert_eq!(h.await, Err(Canceled));
        }
        assert_eq!(spawn(|| 7u8).await, Ok(7));
    }

    #[test]
    fn runs_at_most_one_job_per_thread_at_once() {
        let n = threads();
        assert!(n >= 1 && n <= DATA_THREADS_MAX);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n * 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for h in handles {
            futures::executor::block_on(h).unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most >= 1 && most <= n, "{most} jobs at once on {n} threads");
    }

    #[test]
    fn jobs_run_without_anyone_polling_them() {
        let n = threads();
        // Every thread waits at the barrier with this test: the jobs started unpolled.
        let barrier = Arc::new(Barrier::new(n + 1));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let b = barrier.clone();
                spawn(move || {
                    b.wait();
                })
            })
            .collect();
        barrier.wait();
        for h in handles {
            futures::executor::block_on(h).unwrap();
        }
    }
}
