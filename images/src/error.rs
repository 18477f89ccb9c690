//! The images crate's error type.

pub use dist_content::ErrorKind;

/// An error from handling image descriptors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Returned by a handler to say: handled, but do not descend into this descriptor's
    /// children (containerd's `ErrSkipDesc`). `walk` and `dispatch` treat it as success.
    #[error("skip descriptor's children")]
    SkipChildren,
    /// The content store failed. The content error is also the `source()`, so a chain
    /// walker (`anyhow`'s `downcast_ref`, say) finds it.
    #[error("{0}")]
    Content(#[from] dist_content::Error),
    /// A manifest, index or config could not be understood.
    #[error("{what}: {reason}")]
    Invalid {
        /// The digest or name of the object.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// A manifest, index or config is not valid JSON of its type; the serde error is the
    /// `source()`. Kind [`ErrorKind::InvalidArgument`], like [`Error::Invalid`].
    #[error("{what}: parsing {object}: {source}")]
    Decode {
        /// The digest or name of the object.
        what: String,
        /// What it should have been (`"manifest"`, `"index"`, `"config"`).
        object: &'static str,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// Something the caller asked for does not exist (no manifest for the platform, no image
    /// of that name).
    #[error("{0}: not found")]
    NotFound(String),
    /// The name being created is taken already.
    #[error("{0}: already exists")]
    AlreadyExists(String),
    /// Another component's error, kept with its kind (a fetch in a handler, say).
    #[error("{source}")]
    Other {
        /// The kind the source reported.
        kind: ErrorKind,
        /// The source error.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// The kind of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::SkipChildren => ErrorKind::FailedPrecondition,
            Error::Content(e) => e.kind(),
            Error::Invalid { .. } | Error::Decode { .. } => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::Other { kind, .. } => *kind,
        }
    }

    /// A decode error for `object` (`"manifest"`, `"index"`, `"config"`) named by `what`.
    pub fn decode(
        what: impl Into<String>,
        object: &'static str,
        source: serde_json::Error,
    ) -> Self {
        Error::Decode {
            what: what.into(),
            object,
            source,
        }
    }

    /// Wraps another crate's error, keeping its kind.
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

/// The images crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
