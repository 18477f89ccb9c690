//! The distribution reference grammar, one hand-written matcher per production.
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]
//! host             := domain-name | "[" ipv6 "]"
//! domain-name      := domain-component ( "." domain-component )*
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9] [a-zA-Z0-9-]* [a-zA-Z0-9]
//! port             := [0-9]+
//! ipv6             := [a-fA-F0-9:]+
//! path             := path-component ( "/" path-component )*
//! path-component   := alnum ( separator alnum )*
//! alnum            := [a-z0-9]+
//! separator        := "." | "_" | "__" | "-"+
//! tag              := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" encoded
//! algorithm        := alg-component ( [-_+.] alg-component )*
//! alg-component    := [A-Za-z] [A-Za-z0-9]*
//! encoded          := [0-9a-fA-F]{32,}
//! ```
//!
//! Every matcher is a single linear pass over bytes with no allocation, so parsing
//! hostile input costs time proportional to its length.

use crate::error::DigestProblem;

/// Longest repository name (domain, `/` and path) the grammar accepts.
pub const NAME_MAX_LEN: usize = 255;

/// Longest tag the grammar accepts.
pub const TAG_MAX_LEN: usize = 128;

/// Whether `s` is a `domain`: a host name, IPv4 address or bracketed IPv6 address, with an
/// optional numeric port.
pub(crate) fn is_domain(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return false;
        };
        let inside = &rest[..close];
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        let after = &rest[close + 1..];
        if after.is_empty() {
            return true;
        }
        match after.strip_prefix(':') {
            Some(port) => return is_port(port),
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if let Some(port) = port
        && !is_port(port)
    {
        return false;
    }
    !host.is_empty() && host.split('.').all(is_domain_component)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// Whether the first component of a name is treated as a registry host by the
/// containerd/Docker convention: it contains a `.` or `:` (so `example.com`, `host:5000`,
/// `[::1]`), is a bracketed IPv6 address, or is exactly `localhost`.
pub(crate) fn looks_like_host(first: &str) -> bool {
    first == "localhost" || first.contains(['.', ':']) || first.starts_with('[')
}

/// Whether `s` is a `path`: `/`-separated path components.
pub(crate) fn is_path(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// Whether `s` is one `path-component`: lower-case alphanumeric runs joined by exactly one
/// separator (`.`, `_`, `__` or any number of `-`).
pub(crate) fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        // One alphanumeric run.
        let start = i;
        while i < b.len() && is_lower_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        // One separator.
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `s` is a `tag`: a word character then up to 127 word characters, `.` or `-`.
pub(crate) fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(first) if is_word(*first) => {
            b.len() <= TAG_MAX_LEN && b.iter().all(|c| is_word(*c) || *c == b'.' || *c == b'-')
        }
        _ => false,
    }
}

/// The hash algorithms a digest may name, with the length of their hex encoding.
const ALGORITHMS: &[(&str, usize)] = &[("sha256", 64), ("sha384", 96), ("sha512", 128)];

/// Checks a `digest` and that it names a supported algorithm (sha256, sha384, sha512) with
/// a lower-case hex encoding of exactly the algorithm's length, as `go-digest` does.
pub(crate) fn check_digest(s: &str) -> Result<(), DigestProblem> {
    let Some((algorithm, encoded)) = s.split_once(':') else {
        return Err(DigestProblem::MissingAlgorithm);
    };
    if !is_algorithm(algorithm) {
        return Err(DigestProblem::MalformedAlgorithm);
    }
    let Some(&(_, expected)) = ALGORITHMS.iter().find(|(name, _)| *name == algorithm) else {
        return Err(DigestProblem::UnsupportedAlgorithm);
    };
    if encoded.len() != expected {
        return Err(DigestProblem::WrongLength {
            expected,
            actual: encoded.len(),
        });
    }
    if !encoded
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(DigestProblem::NotLowerHex);
    }
    Ok(())
}

fn is_algorithm(s: &str) -> bool {
    s.split(['-', '_', '+', '.']).all(|component| {
        let b = component.as_bytes();
        matches!(b.first(), Some(first) if first.is_ascii_alphabetic())
            && b.iter().all(u8::is_ascii_alphanumeric)
    })
}

/// Whether `s` is 64 lower-case hex characters: the form of an image ID, which Docker
/// refuses as a repository name to avoid ambiguity.
pub(crate) fn is_identifier(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_component_separators_follow_the_grammar() {
        for ok in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b_c__d-e",
            "0101",
        ] {
            assert!(is_path_component(ok), "{ok} should be valid");
        }
        for bad in [
            "", "A", "a.", ".a", "a..b", "a___b", "a_.b", "a-.b", "_a", "a-", "a/b", "a:b",
        ] {
            assert!(!is_path_component(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn tag_length_limit_is_128() {
        assert!(is_tag(&"a".repeat(128)));
        assert!(!is_tag(&"a".repeat(129)));
        assert!(!is_tag(""));
        assert!(!is_tag("-a"));
        assert!(!is_tag(".a"));
        assert!(is_tag("_a.b-C"));
    }

    #[test]
    fn digest_problems_are_classified() {
        let hex64 = "a".repeat(64);
        assert_eq!(check_digest(&format!("sha256:{hex64}")), Ok(()));
        assert_eq!(
            check_digest("sha256:abc"),
            Err(DigestProblem::WrongLength {
                expected: 64,
                actual: 3
            })
        );
        assert_eq!(
            check_digest(&format!("md5:{hex64}")),
            Err(DigestProblem::UnsupportedAlgorithm)
        );
        assert_eq!(
            check_digest(&format!("1sha:{hex64}")),
            Err(DigestProblem::MalformedAlgorithm)
        );
        assert_eq!(
            check_digest(&format!("sha256:{}", "A".repeat(64))),
            Err(DigestProblem::NotLowerHex)
        );
        assert_eq!(
            check_digest("nocolon"),
            Err(DigestProblem::MissingAlgorithm)
        );
    }

    #[test]
    fn identifier_is_exactly_64_lower_hex() {
        assert!(is_identifier(&"0a".repeat(32)));
        assert!(!is_identifier(&"0A".repeat(32)));
        assert!(!is_identifier(&"0a".repeat(31)));
    }
}
