//! The content crate's error type and the error kinds shared by every dist crate.

/// The kinds every dist crate's `Error` reports. The enum lives in `dist-reference`, the
/// lowest crate, so that reference errors share it; it is re-exported here, where most
/// callers meet it.
pub use dist_reference::ErrorKind;

/// An error from the content store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No committed blob has this digest.
    #[error("content {0}: not found")]
    NotFound(String),
    /// A blob with this digest is already committed.
    #[error("content {0}: already exists")]
    AlreadyExists(String),
    /// Another writer (in this or another process) holds the ingest ref.
    #[error("ingest ref {0:?}: locked by another writer")]
    Locked(String),
    /// No ingest is in progress under this ref.
    #[error("ingest ref {0:?}: not found")]
    IngestNotFound(String),
    /// The committed size differs from what was expected.
    #[error("{what}: unexpected size {actual}, expected {expected}")]
    SizeMismatch {
        /// The ref or digest being committed.
        what: String,
        /// The size that was expected.
        expected: u64,
        /// The size actually written.
        actual: u64,
    },
    /// The data's digest differs from what was expected.
    #[error("{what}: unexpected digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The ref or digest being committed.
        what: String,
        /// The digest that was expected.
        expected: String,
        /// The digest of the data actually written.
        actual: String,
    },
    /// A digest names an algorithm other than sha256, sha384 or sha512: the blob cannot be
    /// verified, so it is neither stored nor read. Kind [`ErrorKind::InvalidArgument`].
    #[error("{digest}: unsupported digest algorithm {algorithm:?} (sha256, sha384 and sha512 are)")]
    UnsupportedDigestAlgorithm {
        /// The digest as given (elided).
        digest: String,
        /// Its algorithm.
        algorithm: String,
    },
    /// A caller passed something malformed (an empty ref, an offset past the end).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An I/O error, with the path or operation it happened on.
    #[error("{context}: {source}")]
    Io {
        /// The path or operation.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure, with the kind it should be handled as: a store that is not local
    /// (a remote service that is down, a policy that refuses) reports what went wrong through
    /// this variant. Build it with [`Error::other`].
    #[error("{source}")]
    Other {
        /// The kind callers branch on.
        kind: ErrorKind,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// The kind of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) | Error::IngestNotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::Locked(_) => ErrorKind::Unavailable,
            Error::SizeMismatch { .. } | Error::DigestMismatch { .. } => {
                ErrorKind::FailedPrecondition
            }
            Error::InvalidArgument(_) | Error::UnsupportedDigestAlgorithm { .. } => {
                ErrorKind::InvalidArgument
            }
            Error::Io { .. } => ErrorKind::Io,
            Error::Other { kind, .. } => *kind,
        }
    }

    /// The error for a digest whose algorithm no dist crate verifies.
    pub fn unsupported_digest(digest: &oci_spec::image::Digest) -> Self {
        Error::UnsupportedDigestAlgorithm {
            digest: crate::elide(digest.as_ref()),
            algorithm: crate::elide(digest.algorithm().as_ref()),
        }
    }

    /// Wraps an I/O error with the path or operation it happened on.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An error of the given kind for failures the other variants do not name: a store
    /// backed by a remote service reports `Unavailable` or `Unauthorized` this way, a
    /// policy wrapper `FailedPrecondition`. `source` may be an error or a message.
    ///
    /// ```
    /// use dist_content::{Error, ErrorKind};
    ///
    /// let err = Error::other(ErrorKind::Unavailable, "blob service: connection refused");
    /// assert_eq!(err.kind(), ErrorKind::Unavailable);
    /// assert_eq!(err.to_string(), "blob service: connection refused");
    /// ```
    pub fn other(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Other {
            kind,
            source: source.into(),
        }
    }
}

/// The content crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::str::FromStr;

    use super::*;

    #[test]
    fn io_error_stays_reachable_through_source() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = crate::LocalStore::open(file.join("root")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_ne!(io.kind(), std::io::ErrorKind::NotFound, "{io}");
    }

    #[test]
    fn unsupported_digest_algorithm_is_its_own_invalid_argument_error() {
        let d = oci_spec::image::Digest::from_str("blake3:0123456789abcdef").unwrap();
        let err = crate::Algorithm::of(&d).err().unwrap();
        assert!(
            matches!(&err, Error::UnsupportedDigestAlgorithm { algorithm, .. } if algorithm == "blake3"),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.to_string().contains("unsupported digest algorithm"),
            "{err}"
        );
    }

    #[test]
    fn other_keeps_the_wrapped_error_as_source() {
        let err = Error::other(ErrorKind::Unavailable, std::io::Error::other("down"));
        assert!(err.source().unwrap().is::<std::io::Error>());
    }
}
