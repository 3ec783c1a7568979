//! glibc malloc settings for a node process, so freed block buffers are reused rather than
//! handed back to the kernel.
//!
//! A node moves data in buffers of 256 KiB to 2 MiB: blocks read for serving, 1 MiB bitswap
//! frames, message encodings. glibc serves allocations that size with `mmap` (above its adaptive
//! threshold, which starts at 128 KiB) and gives the top of a heap back to the kernel once more
//! than its trim threshold is free there; either way the next buffer page-faults in fresh zeroed
//! pages, and on VMs that report free memory to the host (virtio-balloon free page reporting)
//! the hypervisor's first touch of each page as well. [`tune`] raises both thresholds above what
//! a transfer churns. In the 1 GiB node-to-node fetch: page faults per run 143-150 k -> 15.5 k,
//! ~8% more throughput and ~10% less CPU per GiB (benches/README.md, "Session 9"). The price is
//! up to [`TRIM_THRESHOLD_BYTES`] of freed memory kept per malloc arena after a burst.
//!
//! The `ipfs-kit` binary and `fetch_bench` call it first thing in `main`; the library does not,
//! since a program that embeds a node owns its allocator.
#![allow(unsafe_code)]

/// Allocations at least this large are served by `mmap` (and unmapped when freed): above the
/// 2 MiB block limit and the 1 MiB frames, so every buffer a transfer churns comes from a heap.
pub const MMAP_THRESHOLD_BYTES: usize = 4 << 20;
/// Free bytes at the top of a heap kept for reuse before glibc returns them to the kernel.
pub const TRIM_THRESHOLD_BYTES: usize = 64 << 20;

/// Sets both thresholds. Returns whether they were set: `false` where the C library is not
/// glibc. Call it before any thread starts (glibc documents `mallopt` as unsafe to call while
/// other threads allocate).
pub fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Both values are far below `c_int::MAX`.
        let mmap = MMAP_THRESHOLD_BYTES as libc::c_int;
        let trim = TRIM_THRESHOLD_BYTES as libc::c_int;
        // SAFETY: `mallopt` takes plain integers and only changes allocator parameters; glibc
        // validates them (returning 0 on a value it refuses). The caller runs it before other
        // threads exist, as its docs require.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, trim) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    /// Set when this test binary runs as the child of [`glibc_accepts_both_thresholds`].
    const CHILD_ENV: &str = "IPFS_KIT_MALLOC_TUNE_CHILD";

    /// `tune` must run before other threads allocate, and a test binary runs tests on threads
    /// of its own: so the call happens in a fresh copy of this binary running one test, its
    /// harness thread waiting.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_both_thresholds() {
        in_a_child();
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn in_a_child() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "malloc::tests::tune_in_a_fresh_process",
                "--ignored",
            ])
            .args(["--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test: {stdout}"
        );
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[ignore = "run by glibc_accepts_both_thresholds in a child process"]
    fn tune_in_a_fresh_process() {
        if std::env::var_os(CHILD_ENV).is_none() {
            // Run directly (`cargo test -- --ignored`): other tests may be running; go through a
            // child like the test above.
            return in_a_child();
        }
        assert!(super::tune());
        // Allocation works on both sides of the new mmap threshold.
        let below = vec![1u8; super::MMAP_THRESHOLD_BYTES - 1];
        let above = vec![2u8; super::MMAP_THRESHOLD_BYTES];
        assert_eq!(below[below.len() - 1], 1);
        assert_eq!(above[above.len() - 1], 2);
    }
}
