//! When and how long to wait before trying a registry request again.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Bounds on retrying transient failures: connection errors, `408`, `429` and `5xx`.
///
/// Waits grow exponentially from [`base_delay`](RetryPolicy::base_delay) with full jitter,
/// capped by [`max_delay`](RetryPolicy::max_delay); a `Retry-After` header replaces the
/// computed wait. Retrying stops after [`max_attempts`](RetryPolicy::max_attempts) tries or
/// once [`max_elapsed`](RetryPolicy::max_elapsed) has passed, whichever comes first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How many times one request is tried in total (at least 1).
    pub max_attempts: u32,
    /// The first backoff step.
    pub base_delay: Duration,
    /// The largest single wait, including a server's `Retry-After`.
    pub max_delay: Duration,
    /// The total time after which no further attempt is started.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets the number of attempts.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the first backoff step and the cap on a single wait.
    pub fn with_delays(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max;
        self
    }

    /// Sets the total time budget.
    pub fn with_max_elapsed(mut self, d: Duration) -> Self {
        self.max_elapsed = d;
        self
    }

    /// The jittered wait before attempt number `attempt + 1` (`attempt` counts from 1).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        // Full jitter: anywhere between half the step and the step, so that many clients
        // retrying at once spread out.
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// The wait before retrying a response with `status`, or `None` when it is not
    /// retryable. `Retry-After` (seconds or an HTTP date) wins over the backoff.
    pub(crate) fn delay_for_status(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        attempt: u32,
    ) -> Option<Duration> {
        if !is_retryable_status(status) {
            return None;
        }
        match retry_after(headers) {
            Some(d) => Some(d.min(self.max_delay)),
            None => Some(self.backoff(attempt)),
        }
    }
}

/// Whether a response status is worth retrying.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Parses `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        let p = RetryPolicy::default();
        let h = HeaderMap::new();
        for s in [408u16, 429, 500, 502, 503, 504] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(p.delay_for_status(s, &h, 1).is_some(), "{s}");
        }
        for s in [400u16, 401, 403, 404, 416] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(p.delay_for_status(s, &h, 1).is_none(), "{s}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default()
            .with_delays(Duration::from_millis(100), Duration::from_millis(400));
        assert!(p.backoff(1) <= Duration::from_millis(100));
        assert!(p.backoff(1) >= Duration::from_millis(50));
        assert!(p.backoff(10) <= Duration::from_millis(400));
        assert!(p.backoff(10) >= Duration::from_millis(200));
    }

    #[test]
    fn retry_after_replaces_the_backoff() {
        let p =
            RetryPolicy::default().with_delays(Duration::from_millis(1), Duration::from_secs(10));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let d = p.delay_for_status(StatusCode::TOO_MANY_REQUESTS, &h, 1);
        assert_eq!(d, Some(Duration::from_secs(3)));
    }

    #[test]
    fn retry_after_is_capped_by_max_delay() {
        let p = RetryPolicy::default().with_delays(Duration::ZERO, Duration::from_secs(2));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        let d = p.delay_for_status(StatusCode::TOO_MANY_REQUESTS, &h, 1);
        assert_eq!(d, Some(Duration::from_secs(2)));
    }
}
