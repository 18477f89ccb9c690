//! The content crate's error type and the error kinds shared by every dist crate.

use std::fmt;

/// What went wrong, in the handful of kinds a caller branches on.
///
/// Every dist crate's `Error` reports one of these through its `kind()`; they mirror
/// containerd's `errdefs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The blob, ingest, image or snapshot does not exist.
    NotFound,
    /// The thing being created exists already (for content: the blob is committed).
    AlreadyExists,
    /// The resource is busy or locked (another writer holds the ingest ref), or a
    /// remote is temporarily unreachable: retrying later may succeed.
    Unavailable,
    /// A precondition did not hold: size or digest mismatch, wrong state.
    FailedPrecondition,
    /// The input is malformed: bad digest, bad reference, bad archive.
    InvalidArgument,
    /// The registry refused the credentials (or none were given).
    Unauthorized,
    /// An operating-system I/O error.
    Io,
    /// The peer broke the protocol (unexpected status, malformed response).
    Protocol,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::FailedPrecondition => "failed precondition",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Io => "i/o error",
            ErrorKind::Protocol => "protocol error",
        })
    }
}

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
    /// A caller passed something malformed (an unsupported digest algorithm, an empty ref,
    /// an offset past the end).
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
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Io { .. } => ErrorKind::Io,
            Error::Other { kind, .. } => *kind,
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
