//! `Range` and `Content-Range` for byte ranges, with every number checked.
//!
//! The server's `Content-Range` decides which bytes a `206` body holds; a value that does
//! not parse, overflows, or disagrees with what was asked for is refused rather than
//! trusted.

/// A parsed `Content-Range: bytes <first>-<last>/<total>` (inclusive `last`; `total` may be
/// `*`, unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) total: Option<u64>,
}

impl ContentRange {
    /// How many bytes the range holds (`last - first + 1`), `None` only if that overflows.
    pub(crate) fn len(&self) -> Option<u64> {
        self.last.checked_sub(self.first)?.checked_add(1)
    }
}

/// Parses a `Content-Range` value. `None` for anything but a satisfiable byte range with
/// `first <= last < total` and numbers that fit in `u64`.
pub(crate) fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?;
    // One or more spaces between the unit and the range.
    let trimmed = rest.trim_start_matches(' ');
    if trimmed.len() == rest.len() {
        return None;
    }
    let (range, total) = trimmed.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first = number(first)?;
    let last = number(last)?;
    let total = match total.trim() {
        "*" => None,
        t => Some(number(t)?),
    };
    if first > last || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange { first, last, total })
}

/// Decimal digits only (no sign, no spaces inside), fitting in `u64`.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `Range` header value for bytes `start..=end` (or `start..` when `end` is `None`).
pub(crate) fn range_header(start: u64, end: Option<u64>) -> String {
    match end {
        Some(e) => format!("bytes={start}-{e}"),
        None => format!("bytes={start}-"),
    }
}

/// Checks a `206` answer to a request for `start..=end` of content of `size` bytes; returns
/// how many body bytes to expect. Errors say what was wrong.
pub(crate) fn check_partial(
    header: Option<&str>,
    start: u64,
    end: Option<u64>,
    size: u64,
) -> Result<u64, String> {
    let Some(v) = header else {
        return Err("206 without Content-Range".into());
    };
    let Some(cr) = parse_content_range(v) else {
        return Err(format!(
            "unusable Content-Range `{}`",
            dist_content::Elided(v)
        ));
    };
    if cr.first != start {
        return Err(format!(
            "asked for bytes from {start}, got from {}",
            cr.first
        ));
    }
    let want_last = end.unwrap_or(u64::MAX).min(size.saturating_sub(1));
    if cr.last > want_last || cr.last >= size {
        return Err(format!(
            "asked for bytes up to {want_last}, got up to {}",
            cr.last
        ));
    }
    if let Some(total) = cr.total
        && total != size
    {
        return Err(format!(
            "Content-Range total {total} is not the size {size}"
        ));
    }
    cr.len()
        .ok_or_else(|| "Content-Range length overflows".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn well_formed_ranges_parse() {
        let cr = parse_content_range("bytes 0-99/100").unwrap();
        assert_eq!(
            cr,
            ContentRange {
                first: 0,
                last: 99,
                total: Some(100)
            }
        );
        assert_eq!(cr.len(), Some(100));
        assert_eq!(parse_content_range("bytes 5-5/*").unwrap().total, None);
        let max = u64::MAX;
        let cr = parse_content_range(&format!("bytes 0-{}/{max}", max - 1)).unwrap();
        assert_eq!(cr.len(), Some(max));
    }

    #[test]
    fn garbage_and_overflowing_ranges_are_refused() {
        for v in [
            "",
            "bytes",
            "bytes=0-9/10",
            "bytes 0-9",
            "bytes 9-0/10",
            "bytes 0-10/10",
            "bytes -1-5/10",
            "bytes 0--5/10",
            "bytes +0-5/10",
            "bytes 0-18446744073709551616/*",
            "bytes 18446744073709551615-18446744073709551615/18446744073709551615",
            "bytes */10",
            "items 0-9/10",
            "bytes 0-9/ten",
        ] {
            assert_eq!(parse_content_range(v), None, "{v:?}");
        }
    }

    #[test]
    fn a_partial_answer_must_match_the_request() {
        let ok = check_partial(Some("bytes 10-19/100"), 10, Some(19), 100);
        assert_eq!(ok, Ok(10));
        assert_eq!(
            check_partial(Some("bytes 10-99/100"), 10, None, 100),
            Ok(90)
        );
        assert!(check_partial(None, 10, None, 100).is_err());
        assert!(check_partial(Some("bytes 11-99/100"), 10, None, 100).is_err());
        assert!(check_partial(Some("bytes 10-50/100"), 10, Some(19), 100).is_err());
        assert!(check_partial(Some("bytes 10-99/1000"), 10, None, 100).is_err());
        let long = format!("bytes {}", "9".repeat(10_000));
        let err = check_partial(Some(&long), 0, None, 100).unwrap_err();
        assert!(err.len() < 400, "{} bytes", err.len());
    }

    proptest! {
        #[test]
        fn content_range_parsing_never_panics(v in "\\PC{0,60}") {
            if let Some(cr) = parse_content_range(&v) {
                prop_assert!(cr.first <= cr.last);
                prop_assert!(cr.total.is_none_or(|t| cr.last < t));
                prop_assert!(cr.len().is_some());
            }
        }

        #[test]
        fn numeric_content_ranges_round_trip_or_are_refused(
            a in any::<u64>(), b in any::<u64>(), t in proptest::option::of(any::<u64>()),
        ) {
            let total = t.map_or("*".to_string(), |t| t.to_string());
            let parsed = parse_content_range(&format!("bytes {a}-{b}/{total}"));
            let valid = a <= b && t.is_none_or(|t| b < t);
            prop_assert_eq!(parsed.is_some(), valid);
            if let Some(cr) = parsed {
                prop_assert_eq!((cr.first, cr.last, cr.total), (a, b, t));
            }
        }

        #[test]
        fn partial_checks_never_panic_and_bound_the_body(
            first in any::<u64>(), last in any::<u64>(), total in any::<u64>(),
            start in any::<u64>(), end in proptest::option::of(any::<u64>()), size in any::<u64>(),
        ) {
            let v = format!("bytes {first}-{last}/{total}");
            if let Ok(n) = check_partial(Some(&v), start, end, size) {
                // Never more than was asked for, never past the content's end.
                prop_assert!(n >= 1);
                prop_assert!(start.checked_add(n - 1).is_some_and(|l| l < size));
                if let Some(e) = end {
                    prop_assert!(start.checked_add(n - 1).is_some_and(|l| l <= e));
                }
            }
        }
    }
}
