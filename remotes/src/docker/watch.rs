//! The per-descriptor stall budget, and reporting stalls and retries to an observer.
//!
//! One [`Watch`] follows every attempt made for one descriptor (the first request, each
//! reopening with `Range`, each parallel chunk). A stalled attempt (no response headers
//! within the header timeout, or no body byte within the stall timeout) is counted whether
//! or not it delivered bytes before stalling, so a registry that stalls after a few KiB on
//! every attempt exhausts the budget instead of being retried for as long as each attempt
//! makes "progress". Each stalled attempt lasts at most `header_timeout + stall_timeout`,
//! so the stalls of one descriptor cost at most `max_stalls` times that.
//!
//! The watch also remembers when the descriptor's last byte arrived: retries of failed
//! requests (5xx, 429, connection errors) stop once [`RetryPolicy::max_elapsed`] has passed
//! without a byte of this descriptor, however many reopenings that spans.
//!
//! [`RetryPolicy::max_elapsed`]: crate::RetryPolicy::max_elapsed

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::fetcher::{FetchEvent, FetchObserver};

/// The stall budget and the observer of one descriptor's fetch.
#[derive(Clone)]
pub(crate) struct Watch {
    stalls: Arc<AtomicU32>,
    max_stalls: u32,
    born: Instant,
    /// Milliseconds after `born` at which the last byte arrived (0: none yet).
    progress_at: Arc<AtomicU64>,
    observer: Option<Arc<dyn FetchObserver>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("stalls", &self.stalls.load(Ordering::Relaxed))
            .field("max_stalls", &self.max_stalls)
            .finish_non_exhaustive()
    }
}

impl Watch {
    /// A fresh budget of `max_stalls` stalled attempts (at least 1).
    pub(crate) fn new(max_stalls: u32, observer: Option<Arc<dyn FetchObserver>>) -> Self {
        Watch {
            stalls: Arc::new(AtomicU32::new(0)),
            max_stalls: max_stalls.max(1),
            born: Instant::now(),
            progress_at: Arc::new(AtomicU64::new(0)),
            observer,
        }
    }

    /// Counts one stalled attempt and reports it; `false` once the budget is spent.
    pub(crate) fn stalled(&self, host: &str, offset: u64, waited: Duration) -> bool {
        let before = self
            .stalls
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            })
            .unwrap_or(u32::MAX);
        let stalls = before.saturating_add(1);
        self.emit(FetchEvent::Stalled {
            host: host.to_string(),
            offset,
            waited,
            stalls,
            budget: self.max_stalls,
        });
        stalls < self.max_stalls
    }

    /// Bytes arrived just now.
    pub(crate) fn progressed(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.progress_at.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long ago the last byte arrived (or the fetch began, before any byte).
    pub(crate) fn since_progress(&self) -> Duration {
        let at = Duration::from_millis(self.progress_at.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(at)
    }

    /// Whether the stall budget is spent.
    pub(crate) fn exhausted(&self) -> bool {
        self.stalls.load(Ordering::Relaxed) >= self.max_stalls
    }

    /// Stalled attempts so far.
    pub(crate) fn stalls(&self) -> u32 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// Reports that the transfer is tried again.
    pub(crate) fn retrying(&self, host: &str, offset: u64, delay: Duration, reason: &str) {
        if self.observer.is_some() {
            self.emit(FetchEvent::Retrying {
                host: host.to_string(),
                offset,
                delay,
                reason: dist_content::elide(reason),
            });
        }
    }

    fn emit(&self, event: FetchEvent) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Log(Mutex<Vec<FetchEvent>>);
    impl FetchObserver for Log {
        fn on_event(&self, event: &FetchEvent) {
            if let Ok(mut l) = self.0.lock() {
                l.push(event.clone());
            }
        }
    }

    #[test]
    fn the_budget_counts_stalls_across_clones_and_reports_each() {
        let log = Arc::new(Log(Mutex::new(Vec::new())));
        let w = Watch::new(3, Some(log.clone()));
        let chunk = w.clone();
        assert!(w.stalled("h", 10, Duration::from_secs(1)));
        assert!(chunk.stalled("h", 20, Duration::from_secs(1)));
        assert!(!w.exhausted());
        assert!(!chunk.stalled("h", 30, Duration::from_secs(1)));
        assert!(w.exhausted());
        assert_eq!(w.stalls(), 3);
        w.retrying("h", 30, Duration::ZERO, &"x".repeat(1000));
        let log = log.0.lock().unwrap();
        assert_eq!(log.len(), 4);
        match &log[3] {
            FetchEvent::Retrying { reason, .. } => assert!(reason.len() < 300),
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn progress_resets_the_time_since_the_last_byte() {
        let w = Watch::new(3, None);
        std::thread::sleep(Duration::from_millis(20));
        assert!(w.since_progress() >= Duration::from_millis(20));
        w.clone().progressed();
        assert!(w.since_progress() < Duration::from_millis(20));
    }

    #[test]
    fn a_zero_budget_still_allows_one_attempt() {
        let w = Watch::new(0, None);
        assert!(!w.exhausted());
        assert!(!w.stalled("h", 0, Duration::ZERO));
    }
}
