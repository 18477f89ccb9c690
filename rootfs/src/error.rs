//! The rootfs crate's error type.

use std::io;

pub use dist_content::ErrorKind;

use crate::Limit;

/// An error from applying layers or managing snapshots.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The layer is malformed or tries something forbidden; names the offending entry.
    #[error("invalid layer entry {entry:?}: {reason}")]
    InvalidEntry {
        /// The entry's name as written in the archive.
        entry: String,
        /// What is wrong with it.
        reason: String,
        /// The tar crate's error when it refused a header field (mode, uid, device number).
        #[source]
        source: Option<io::Error>,
    },
    /// The stream could not be read as a layer (truncated, corrupt, bad checksum).
    #[error("corrupt layer stream at {at}: {source}")]
    Corrupt {
        /// Where in the archive: the entry being read or the last one read.
        at: String,
        /// The underlying decode error.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation failed while writing an entry.
    #[error("{context}: {source}")]
    Io {
        /// The entry or operation.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The snapshot does not exist.
    #[error("snapshot {0:?}: not found")]
    NotFound(String),
    /// A snapshot with this key or name exists already.
    #[error("snapshot {0:?}: already exists")]
    AlreadyExists(String),
    /// The operation does not fit the snapshot's state (committing a committed snapshot,
    /// removing a parent, a non-sha256 digest).
    #[error("{0}")]
    FailedPrecondition(String),
    /// An invalid argument (empty key, bad id mapping, unsupported option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The applied layer's DiffID differs from the one the image config names.
    #[error("layer {blob}: DiffID {actual} does not match expected {expected}")]
    DiffIdMismatch {
        /// The layer blob's digest.
        blob: String,
        /// The DiffID from the image configuration.
        expected: String,
        /// The DiffID of what was applied.
        actual: String,
    },
    /// The layer exceeds a bound on what one entry may make the parser hold: a special
    /// header over [`MAX_SPECIAL_HEADER`](crate::MAX_SPECIAL_HEADER) bytes (refused before it
    /// is read), too many PAX records or xattrs. Tells a hostile layer from a corrupt one.
    #[error("invalid layer entry {entry}: {actual} {limit}, over the limit of {max}", max = limit.max())]
    LimitExceeded {
        /// Which bound.
        limit: Limit,
        /// The entry (its name elided) and where it is.
        entry: String,
        /// The size or count the layer claimed.
        actual: u64,
    },
    /// A snapshot record on disk cannot be decoded (kind
    /// [`FailedPrecondition`](ErrorKind::FailedPrecondition): the store needs repair).
    #[error("corrupt snapshot record {path}: {source}")]
    CorruptRecord {
        /// The record's file.
        path: String,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// A string that should name a ChainID is not a digest.
    #[error("chain id {input:?}: {source}")]
    InvalidChainId {
        /// The string as given (elided).
        input: String,
        /// Why it is not a digest.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// Reading a layer blob from the content store failed.
    #[error("content: {0}")]
    Content(#[from] dist_content::Error),
    /// Reading image records or manifests failed (the garbage collector's mark).
    #[error("images: {0}")]
    Images(#[from] dist_images::Error),
}

impl Error {
    /// The kind of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidEntry { .. }
            | Error::Corrupt { .. }
            | Error::InvalidArgument(_)
            | Error::LimitExceeded { .. } => ErrorKind::InvalidArgument,
            Error::Io { .. } => ErrorKind::Io,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::InvalidChainId { .. } => ErrorKind::InvalidArgument,
            Error::FailedPrecondition(_)
            | Error::DiffIdMismatch { .. }
            | Error::CorruptRecord { .. } => ErrorKind::FailedPrecondition,
            Error::Content(e) => e.kind(),
            Error::Images(e) => e.kind(),
        }
    }

    /// Wraps an I/O error with the entry or operation it happened on.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A decode error from the tar stream at `at` (an elided entry name or a place), or
    /// the [`Error::LimitExceeded`] a header guard reported through it.
    pub(crate) fn corrupt(at: impl Into<String>, source: io::Error) -> Self {
        let source = if source
            .get_ref()
            .is_some_and(|e| e.is::<crate::apply::Exceeded>())
        {
            let kind = source.kind();
            match source
                .into_inner()
                .map(|e| e.downcast::<crate::apply::Exceeded>())
            {
                Some(Ok(e)) => {
                    return Error::LimitExceeded {
                        limit: e.limit,
                        entry: e.entry,
                        actual: e.actual,
                    };
                }
                Some(Err(other)) => io::Error::new(kind, other),
                None => io::Error::from(kind),
            }
        } else {
            source
        };
        Error::Corrupt {
            at: at.into(),
            source,
        }
    }

    pub(crate) fn entry(entry: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidEntry {
            entry: entry.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An invalid entry whose header field `field` tar could not parse; `source` is tar's
    /// error, kept for `source()`.
    pub(crate) fn entry_field(entry: impl Into<String>, field: &str, source: io::Error) -> Self {
        Error::InvalidEntry {
            entry: entry.into(),
            reason: format!("{field}: {source}"),
            source: Some(source),
        }
    }
}

/// The rootfs crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
