//! Why a string is not a reference.
//!
//! Every variant is an invalid-argument error: the input string is wrong, nothing else, so
//! [`Error::kind`] is always [`ErrorKind::InvalidArgument`]. Each message names the
//! offending input.

use std::fmt;

use crate::ErrorKind;

/// A reference string that does not follow the grammar, or breaks one of its limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is the empty string.
    #[error("invalid reference: empty string")]
    Empty,

    /// The repository path has upper-case letters (only the domain may).
    #[error("invalid reference {input:?}: repository name must be lowercase")]
    NameContainsUppercase {
        /// The whole input.
        input: String,
    },

    /// The name (domain, `/` and path) is longer than 255 characters.
    #[error(
        "invalid reference {input:?}: repository name is {len} characters, more than {max}",
        max = crate::NAME_MAX_LEN
    )]
    NameTooLong {
        /// The whole input.
        input: String,
        /// Length of the name part.
        len: usize,
    },

    /// The tag is longer than 128 characters or has characters other than
    /// `[A-Za-z0-9_.-]` (or starts with `.` or `-`).
    #[error(
        "invalid reference {input:?}: tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
    )]
    InvalidTag {
        /// The whole input.
        input: String,
        /// The tag part.
        tag: String,
    },

    /// The digest after `@` is malformed or unsupported.
    #[error("invalid reference {input:?}: digest {digest:?}: {problem}")]
    InvalidDigest {
        /// The whole input.
        input: String,
        /// The digest part (after `@`).
        digest: String,
        /// What is wrong with it.
        problem: DigestProblem,
    },

    /// The first component can only be a registry host (it has a `:` or `[`) but is not a
    /// valid one: bad port, IPv6 zone, stray characters.
    #[error("invalid reference {input:?}: {domain:?} is not a valid registry host[:port]")]
    InvalidDomain {
        /// The whole input.
        input: String,
        /// The host part.
        domain: String,
    },

    /// The input does not follow the grammar: double or trailing slashes, bad separators,
    /// characters outside the alphabet, missing name.
    #[error("invalid reference format {input:?}: {reason}")]
    InvalidFormat {
        /// The whole input.
        input: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// [`normalize`](crate::normalize) refuses a 64-hex-character name: it looks like an
    /// image ID, so treating it as `docker.io/library/<hex>` would be a surprise.
    #[error(
        "invalid repository name {input:?}: 64-character hexadecimal strings are image IDs, not names"
    )]
    LooksLikeImageId {
        /// The whole input.
        input: String,
    },

    /// [`Spec::parse`](crate::Spec::parse) needs a host as first component (with a `.` or
    /// `:`, a bracketed IPv6 address, or `localhost`); normalise familiar names first.
    #[error(
        "invalid reference {input:?}: the locator needs a registry host (a first component with '.' or ':', an [IPv6] address, or localhost)"
    )]
    MissingHostname {
        /// The whole input.
        input: String,
    },
}

/// What is wrong with a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestProblem {
    /// No `algorithm:` prefix.
    MissingAlgorithm,
    /// The algorithm is not `component([-_+.]component)*` with components `[A-Za-z][A-Za-z0-9]*`.
    MalformedAlgorithm,
    /// A well-formed algorithm other than sha256, sha384 or sha512.
    UnsupportedAlgorithm,
    /// The hex encoding has the wrong length for the algorithm.
    WrongLength {
        /// Hex characters the algorithm needs.
        expected: usize,
        /// Hex characters given.
        actual: usize,
    },
    /// The encoding is not lower-case hex.
    NotLowerHex,
}

impl fmt::Display for DigestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingAlgorithm => f.write_str("missing \"algorithm:\" prefix"),
            Self::MalformedAlgorithm => f.write_str("malformed algorithm"),
            Self::UnsupportedAlgorithm => {
                f.write_str("unsupported algorithm (sha256, sha384, sha512 are)")
            }
            Self::WrongLength { expected, actual } => write!(
                f,
                "wrong length: {actual} hex characters, the algorithm needs {expected}"
            ),
            Self::NotLowerHex => f.write_str("encoding must be lower-case hex"),
        }
    }
}

impl Error {
    /// The kind of this error: always [`ErrorKind::InvalidArgument`] (the string is wrong),
    /// the same kind every other dist crate reports for bad input.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }

    /// Whether the digest names an algorithm other than sha256, sha384 or sha512: the
    /// reference is well-formed, but no dist crate can verify its content.
    pub fn is_unsupported_digest(&self) -> bool {
        matches!(
            self,
            Self::InvalidDigest {
                problem: DigestProblem::UnsupportedAlgorithm,
                ..
            }
        )
    }

    /// The name of the variant, stable for logs and metrics (`"invalid_tag"`, ...).
    ///
    /// All variants are invalid-argument errors; this says which rule was broken.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NameContainsUppercase { .. } => "name_contains_uppercase",
            Self::NameTooLong { .. } => "name_too_long",
            Self::InvalidTag { .. } => "invalid_tag",
            Self::InvalidDigest { .. } => "invalid_digest",
            Self::InvalidDomain { .. } => "invalid_domain",
            Self::InvalidFormat { .. } => "invalid_format",
            Self::LooksLikeImageId { .. } => "looks_like_image_id",
            Self::MissingHostname { .. } => "missing_hostname",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{ErrorKind, Reference, Spec};

    #[test]
    fn every_reference_error_is_invalid_argument() {
        for input in ["", "a/UPPER", "a@sha256:zz", "a//b"] {
            let err = Reference::parse(input).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{input}: {err}");
        }
        let err = Spec::parse("redis").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    }

    #[test]
    fn unsupported_digest_algorithm_is_told_apart_from_a_malformed_digest() {
        let unsupported = Reference::parse("a@md5:d41d8cd98f00b204e9800998ecf8427e").unwrap_err();
        assert!(unsupported.is_unsupported_digest(), "{unsupported}");
        assert!(unsupported.to_string().contains("unsupported algorithm"));
        let short = Reference::parse("a@sha256:abc").unwrap_err();
        assert!(!short.is_unsupported_digest(), "{short}");
    }
}
