//! The remotes crate's error type.

pub use dist_content::ErrorKind;

/// An error from resolving or fetching against a registry.
///
/// Messages name the host, reference or digest involved so that a failed pull says where it
/// failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The reference could not be parsed or is not something a registry can serve.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it was refused.
        reason: String,
    },
    /// The registry has no such tag, manifest or blob.
    #[error("{what}: not found")]
    NotFound {
        /// The reference or digest that was looked up (with the host).
        what: String,
    },
    /// The registry refused our credentials, or asked for credentials we do not have.
    #[error("{host}: unauthorized: {reason}")]
    Unauthorized {
        /// The registry (or token server) host that refused.
        host: String,
        /// What the server said, or why no credentials were sent.
        reason: String,
    },
    /// The content does not match its descriptor (size or digest).
    #[error("{what}: {reason}")]
    Mismatch {
        /// The digest or reference being fetched.
        what: String,
        /// What differed.
        reason: String,
    },
    /// A manifest is larger than the configured bound; it was not read.
    #[error("{what}: manifest of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The reference or digest.
        what: String,
        /// The size announced or read so far.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The registry answered in a way the protocol does not allow.
    #[error("{host}: {reason}")]
    Protocol {
        /// The host that answered.
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// The registry could not be reached or kept failing (connection errors, 5xx, 429,
    /// timeouts) until the retry budget ran out.
    #[error("{host}: unavailable: {reason}")]
    Unavailable {
        /// The host that failed last.
        host: String,
        /// The last failure.
        reason: String,
    },
    /// The hosts configuration or credentials file could not be read.
    #[error("{path}: {reason}")]
    Config {
        /// The file or directory.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A registry's `WWW-Authenticate` challenge or its token server's answer is malformed.
    #[error("{host}: {source}")]
    AuthResponse {
        /// The registry whose challenge or token server answered.
        host: String,
        /// What was wrong (it quotes at most an elided snippet, never a token).
        #[source]
        source: crate::auth::ParseError,
    },
    /// The content store failed while `fetch_handler` was writing.
    #[error(transparent)]
    Content(#[from] dist_content::Error),
    /// A local I/O error (reading a CA file, writing into an ingest).
    #[error("{context}: {source}")]
    Io {
        /// The path or operation.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The kind of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidReference { .. } | Error::Config { .. } => ErrorKind::InvalidArgument,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
            Error::Mismatch { .. } | Error::TooLarge { .. } => ErrorKind::FailedPrecondition,
            Error::Protocol { .. } | Error::AuthResponse { .. } => ErrorKind::Protocol,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Content(e) => e.kind(),
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    pub(crate) fn protocol(host: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Protocol {
            host: host.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unavailable(host: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unavailable {
            host: host.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn mismatch(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Mismatch {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Whether a stream that ended with this error may be reopened where it stopped.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// The remotes crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
