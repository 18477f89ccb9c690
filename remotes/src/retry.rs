//! When and how long to wait before trying a registry request again.

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest `Retry-After` taken from a server before [`RetryPolicy::max_delay`] applies:
/// a day. Anything longer (up to `u64::MAX` seconds, or a date centuries ahead) is clamped
/// here so that no later `Instant`/`Duration` arithmetic can overflow.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

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
    /// Never more than [`max_delay`](RetryPolicy::max_delay).
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
    /// retryable. `Retry-After` (seconds or an HTTP date) wins over the backoff; either
    /// way the wait is at most [`max_delay`](RetryPolicy::max_delay).
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

    /// Whether another attempt may start `delay` from now, `elapsed` after the first one
    /// began, having made `attempt` of `attempts` tries. Saturates: a huge `delay` means no.
    pub(crate) fn may_retry(
        &self,
        attempt: u32,
        attempts: u32,
        elapsed: Duration,
        delay: Duration,
    ) -> bool {
        attempt < attempts && elapsed.saturating_add(delay) <= self.max_elapsed
    }
}

/// Whether a response status is worth retrying.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// Parses `Retry-After` as delta-seconds or an HTTP date, clamped to [`MAX_RETRY_AFTER`].
/// Garbage gives `None` (the caller falls back to its backoff).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
}

/// [`retry_after`] on a header value, with the current time given (for tests).
pub(crate) fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: delta-seconds. Too many digits for u64 is still "a very long time".
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
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
    fn absurd_retry_after_values_are_clamped_not_overflowed() {
        let now = SystemTime::now();
        for v in ["18446744073709551615", "99999999999999999999999999"] {
            assert_eq!(parse_retry_after(v, now), Some(MAX_RETRY_AFTER), "{v}");
        }
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_RETRY_AFTER)
        );
        for v in ["", "-1", "1.5", "+3", "soon", "3 s"] {
            assert_eq!(parse_retry_after(v, now), None, "{v:?}");
        }
        let p = RetryPolicy::default();
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("18446744073709551615"),
        );
        let d = p.delay_for_status(StatusCode::SERVICE_UNAVAILABLE, &h, u32::MAX);
        assert_eq!(d, Some(p.max_delay));
        assert!(!p.may_retry(1, 5, Duration::MAX, Duration::MAX));
    }

    proptest::proptest! {
        #[test]
        fn retry_after_never_panics_and_stays_within_a_day(v in "\\PC{0,40}") {
            if let Some(d) = parse_retry_after(&v, SystemTime::now()) {
                proptest::prop_assert!(d <= MAX_RETRY_AFTER);
            }
        }

        #[test]
        fn numeric_retry_after_is_the_seconds_clamped(n in proptest::num::u64::ANY) {
            let d = parse_retry_after(&n.to_string(), SystemTime::now());
            proptest::prop_assert_eq!(d, Some(Duration::from_secs(n).min(MAX_RETRY_AFTER)));
        }

        #[test]
        fn retry_delays_stay_within_the_policy(
            attempt in proptest::num::u32::ANY,
            base_ms in 0u64..=u64::MAX,
            max_ms in 0u64..=100_000_000,
            header in proptest::option::of("[0-9]{0,30}"),
            status in 100u16..600,
        ) {
            let p = RetryPolicy::default()
                .with_delays(Duration::from_millis(base_ms), Duration::from_millis(max_ms));
            proptest::prop_assert!(p.backoff(attempt) <= p.max_delay);
            let mut h = HeaderMap::new();
            if let Some(v) = header.and_then(|v| HeaderValue::from_str(&v).ok()) {
                h.insert(RETRY_AFTER, v);
            }
            let Ok(status) = StatusCode::from_u16(status) else { return Ok(()) };
            if let Some(d) = p.delay_for_status(status, &h, attempt) {
                proptest::prop_assert!(d <= p.max_delay);
                // Deciding whether to wait never overflows either.
                let _ = p.may_retry(attempt, u32::MAX, Duration::MAX, d);
            }
        }
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
