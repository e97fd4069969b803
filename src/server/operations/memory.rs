//! Handing memory back to the system after a burst of connections has come or gone.
//!
//! Allocators keep freed memory for reuse. After thousands of connections close, the
//! server's RSS would stay at its peak (measured with glibc: +25 % after 150 stalled joiners
//! left). A burst of *opens* leaves the same behind: each upgrade's HTTP buffers are freed
//! once the WebSocket takes over, in between the sessions that stay (about 200 bytes per
//! idle peer after 10,000 joins). So once many connections have come or gone, the server
//! hands memory back in two steps: each runtime worker empties its thread cache when it
//! next parks (objects cached per thread keep their pages resident, and only the owning
//! thread can empty its cache), then a check later the arenas' free pages are returned.
//! The second step walks every arena under its lock, so it runs after bursts, not on a
//! timer regardless.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the connection counts are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Decides when freed memory is worth handing back: once the connections closed since the
/// last trim reach a quarter of those open now (and at least `min_churn`), or once as many
/// have opened and the opening has stopped (a trim in the middle of a burst of joins would
/// hand back buffers the next joins allocate again). Counting rather than sampling the open
/// count catches bursts shorter than the check interval; steady churn on a big server trims
/// rarely.
#[derive(Debug)]
pub struct TrimPolicy {
    closed_at_last_trim: u64,
    opened_at_last_trim: u64,
    opened_at_last_check: u64,
    min_churn: u64,
}

impl TrimPolicy {
    pub fn new(min_churn: u64) -> Self {
        Self {
            closed_at_last_trim: 0,
            opened_at_last_trim: 0,
            opened_at_last_check: 0,
            min_churn,
        }
    }

    /// Called every `CHECK_EVERY` with the connections opened since start and those open now.
    pub fn should_trim(&mut self, opened: u64, open: u64) -> bool {
        let closed = opened.saturating_sub(open);
        let enough = self.min_churn.max(open / 4);
        let closed_since = closed.saturating_sub(self.closed_at_last_trim);
        let opened_since = opened.saturating_sub(self.opened_at_last_trim);
        let settled = opened == self.opened_at_last_check;
        self.opened_at_last_check = opened;
        if closed_since >= enough || (settled && opened_since >= enough) {
            self.closed_at_last_trim = closed;
            self.opened_at_last_trim = opened;
            return true;
        }
        false
    }
}

/// Bumped to ask every runtime worker to hand its allocator's thread cache back (see
/// `on_worker_park`).
static THREAD_CACHE_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Asks each runtime worker to empty its allocator's thread cache the next time it parks.
/// Objects held in those caches keep their pages resident, and only the thread that owns a
/// cache can empty it.
pub fn request_thread_cache_flush() {
    THREAD_CACHE_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// The runtime's `on_thread_park` hook: an idle worker empties its thread cache once per
/// request. One relaxed load per park otherwise.
pub fn on_worker_park() {
    flush_if_requested(|| {
        allocator::flush_thread_cache();
    });
}

fn flush_if_requested(flush: impl FnOnce()) {
    thread_local! {
        static SEEN: Cell<u64> = const { Cell::new(0) };
    }
    let epoch = THREAD_CACHE_EPOCH.load(Ordering::Relaxed);
    SEEN.with(|seen| {
        if seen.get() != epoch {
            seen.set(epoch);
            flush();
        }
    });
}

/// Lets the allocator return freed pages on its own as well, between bursts (`rdv serve`
/// calls it once at start).
pub fn start_background_purging() {
    allocator::start_background_purging();
}

/// Returns free heap memory to the system, where the allocator can. Call it after the
/// workers have had a chance to flush their caches (`request_thread_cache_flush`).
pub fn release_free_memory() {
    allocator::release_free_pages();
}

/// jemalloc, the binary's allocator by default (the `jemalloc` feature).
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
mod allocator {
    use std::ffi::CStr;

    /// Runs a jemalloc control that takes and returns nothing; whether jemalloc ran it.
    fn control(name: &CStr) -> bool {
        // SAFETY: the names this module passes are documented jemalloc controls that read
        // and write nothing, so null buffers with zero lengths are what they expect.
        #[allow(unsafe_code)]
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        status == 0
    }

    pub fn flush_thread_cache() -> bool {
        control(c"thread.tcache.flush")
    }

    /// Starts jemalloc's background threads, which return dirty pages after its decay time
    /// (10 s) whether or not the arena is in use: without them a quiet server keeps what
    /// the last burst freed after the explicit purge.
    pub fn start_background_purging() -> bool {
        let mut enable = true;
        // SAFETY: `background_thread` is a documented bool control; `enable` outlives the
        // call and the length passed is its size.
        #[allow(unsafe_code)]
        let status = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"background_thread".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&raw mut enable).cast(),
                size_of::<bool>(),
            )
        };
        status == 0
    }

    /// Purges the dirty pages of every arena (4096 is `MALLCTL_ARENAS_ALL`): jemalloc
    /// otherwise returns them over its decay time, and only while the arena is in use.
    pub fn release_free_pages() -> bool {
        control(c"arena.4096.purge")
    }
}

/// The system's allocator (`--no-default-features`): no thread cache anyone can flush, no
/// background purging.
#[cfg(not(all(feature = "jemalloc", not(target_env = "msvc"))))]
mod allocator {
    pub fn flush_thread_cache() -> bool {
        false
    }

    pub fn start_background_purging() -> bool {
        false
    }

    /// glibc's `malloc_trim` returns every free page of every arena. Its per-thread cache
    /// has no flush; `GLIBC_TUNABLES=glibc.malloc.tcache_count=2` shrinks what it pins.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    pub fn release_free_pages() -> bool {
        // SAFETY: malloc_trim only releases pages malloc itself holds free; it is
        // thread-safe (it takes each arena's lock) and has no preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
        true
    }

    /// Any other allocator keeps what it keeps.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    pub fn release_free_pages() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_enough_connections_have_closed() {
        let mut policy = TrimPolicy::new(100);
        // 1000 opened in one burst, handed back once it settled.
        assert!(!policy.should_trim(1000, 1000));
        assert!(policy.should_trim(1000, 1000));
        // 190 closed: fewer than a quarter of the 810 open.
        assert!(!policy.should_trim(1000, 810));
        // 300 closed, 700 open: a quarter is 175.
        assert!(policy.should_trim(1000, 700));
        // Counted from the last trim: 50 more closed is not enough.
        assert!(!policy.should_trim(1000, 650));
        // A burst that came and went between two checks: 600 opened and closed.
        assert!(policy.should_trim(1600, 650));
        // Small servers: below the minimum, never.
        let mut small = TrimPolicy::new(100);
        assert!(!small.should_trim(60, 0));
        assert!(small.should_trim(160, 0));
    }

    /// A misspelt control name would make every hand-back a silent no-op.
    #[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
    #[test]
    fn jemalloc_runs_every_control_used() {
        assert!(allocator::flush_thread_cache());
        assert!(allocator::release_free_pages());
        assert!(allocator::start_background_purging());
    }

    #[test]
    fn a_worker_flushes_its_cache_once_per_request() {
        thread_local! {
            static FLUSHES: Cell<u32> = const { Cell::new(0) };
        }
        let park = || flush_if_requested(|| FLUSHES.with(|n| n.set(n.get() + 1)));
        std::thread::spawn(move || {
            park();
            let before = FLUSHES.with(Cell::get);
            park();
            assert_eq!(FLUSHES.with(Cell::get), before, "no request, no flush");
            request_thread_cache_flush();
            park();
            park();
            assert_eq!(FLUSHES.with(Cell::get), before + 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn trims_once_a_burst_of_opens_has_settled() {
        let mut policy = TrimPolicy::new(100);
        // Joining: 4000, then 10,000 open; no trim while the count still grows.
        assert!(!policy.should_trim(4000, 4000));
        assert!(!policy.should_trim(10_000, 10_000));
        // Quiet for one check: the upgrades' buffers are handed back once.
        assert!(policy.should_trim(10_000, 10_000));
        assert!(!policy.should_trim(10_000, 10_000));
        // A trickle afterwards is not a burst: 1000 more is under a quarter of 11,000.
        assert!(!policy.should_trim(11_000, 11_000));
        assert!(!policy.should_trim(11_000, 11_000));
        // Small servers: below the minimum, never.
        let mut small = TrimPolicy::new(100);
        assert!(!small.should_trim(60, 60));
        assert!(!small.should_trim(60, 60));
    }
}
