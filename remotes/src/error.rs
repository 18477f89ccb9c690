//! The remotes crate's error type.

pub use dist_content::ErrorKind;

use crate::error_code::{ErrorCode, status_kind};

/// The underlying error a variant keeps (reqwest's, io's, toml's, serde's, another
/// crate's), reachable through [`std::error::Error::source`].
pub(crate) type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a configuration file (`hosts.toml`, `config.json`) could not be used: the message,
/// and the error behind it (io's, toml's, serde_json's) when there is one.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) reason: String,
    pub(crate) source: Option<Source>,
}

impl From<String> for Problem {
    fn from(reason: String) -> Self {
        Problem {
            reason,
            source: None,
        }
    }
}

impl Problem {
    pub(crate) fn with_source(reason: String, source: impl Into<Source>) -> Self {
        Problem {
            reason,
            source: Some(source.into()),
        }
    }
}

/// One error reported many times (a broken `hosts.toml` fails every host it configures):
/// its message, and the original as its `source()`, reachable by downcasting.
#[derive(Debug)]
pub(crate) struct Shared(pub(crate) std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// An error from resolving or fetching against a registry.
///
/// Messages name the host, reference or digest involved so that a failed pull says where it
/// failed. The cause (reqwest's, io's, toml's, serde's, the content store's, the reference
/// parser's) is kept as [`source()`](std::error::Error::source).
///
/// Every dist crate's `Error` has `kind()` returning the one [`ErrorKind`] (defined in
/// `dist-reference`, re-exported by every crate), so a caller handles errors from all of
/// them with one `match`:
///
/// ```
/// use std::path::Path;
///
/// use dist_remotes::{ErrorKind, HostsFile};
/// use oci_spec::image::{Descriptor, Digest, MediaType};
///
/// /// What a runtime does about an error, whichever crate reported it.
/// fn action(kind: ErrorKind) -> &'static str {
///     match kind {
///         ErrorKind::NotFound => "pull it first",
///         ErrorKind::AlreadyExists => "use what is there",
///         ErrorKind::Unavailable => "retry later",
///         ErrorKind::Unauthorized => "log in",
///         ErrorKind::InvalidArgument => "fix the input",
///         _ => "report it",
///     }
/// }
///
/// let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// let reference = "example.com/UPPER:v1".parse::<dist_reference::Reference>().unwrap_err();
/// let content = dist_content::Error::NotFound(digest.into());
/// let desc = Descriptor::new(MediaType::ImageManifest, 1, digest.parse::<Digest>()?);
/// let images = dist_images::parse_manifest(&desc, b"{").unwrap_err();
/// let remotes = HostsFile::parse("server = [", Path::new("hosts.toml")).unwrap_err();
///
/// assert_eq!(action(reference.kind()), "fix the input");
/// assert_eq!(action(content.kind()), "pull it first");
/// assert_eq!(action(images.kind()), "fix the input");
/// assert_eq!(action(remotes.kind()), "fix the input");
/// // A content error carried by another crate keeps its kind, and stays the source.
/// let wrapped = dist_remotes::Error::from(content);
/// assert_eq!(wrapped.kind(), ErrorKind::NotFound);
/// let source = std::error::Error::source(&wrapped).unwrap();
/// assert!(source.is::<dist_content::Error>());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
        /// The parse error (a [`dist_reference::Error`] or an `oci_spec` digest error), if
        /// there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// A digest names an algorithm other than the ones content can be verified with.
    #[error("{digest}: unsupported digest algorithm {algorithm:?}")]
    UnsupportedDigestAlgorithm {
        /// The digest as given (elided).
        digest: String,
        /// Its algorithm.
        algorithm: String,
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
        /// The underlying error (reqwest's when building a client, a digest parse error).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The registry could not be reached or kept failing (connection errors, 5xx, 429,
    /// timeouts) until the retry budget ran out.
    #[error("{host}: unavailable: {reason}")]
    Unavailable {
        /// The host that failed last.
        host: String,
        /// The last failure, with its causes spelled out.
        reason: String,
        /// The last failure's error when it was one (a reqwest error: connection refused,
        /// reset, TLS); `None` for a status code or a timeout.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The hosts configuration or credentials file could not be read.
    #[error("{path}: {reason}")]
    Config {
        /// The file or directory.
        path: String,
        /// What was wrong with it.
        reason: String,
        /// The underlying error (toml's, serde_json's, io's, a certificate parse error).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
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
    /// The content store failed while `fetch_handler` was writing. The content error is
    /// also the `source()`.
    #[error("{0}")]
    Content(#[source] dist_content::Error),
    /// A manifest or index in the local store could not be read or walked (by the push
    /// flow). The images crate's error is also the `source()`.
    #[error("{0}")]
    Images(#[source] dist_images::Error),
    /// The operation is not offered by this implementation (a resolver that cannot push).
    #[error("{what}: not supported")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
    /// The registry answered with a status the operation does not expect, and with the
    /// distribution-spec error body (`{"errors":[{"code":…,"message":…,"detail":…}]}`)
    /// when it sent one. Branch on [`Error::code`], not on the status: registries disagree
    /// on statuses (a tag delete is `400` on distribution 2.8, `405` elsewhere) more than
    /// on codes.
    #[error("{host}: {what}: {status}{}: {message}", code.as_ref().map(|c| format!(" {c}")).unwrap_or_default())]
    Registry {
        /// The registry host that answered.
        host: String,
        /// The request (method and object) that was refused.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The first error code of the body, when the body had one.
        code: Option<ErrorCode>,
        /// The body's messages and details (or its text when it was not the JSON error
        /// body), elided.
        message: String,
    },
    /// A listing went past one of its bounds (pages followed, bytes of a page); nothing
    /// was truncated silently.
    #[error("{what}: over the limit: {reason}")]
    Limit {
        /// What was being listed.
        what: String,
        /// Which bound was passed.
        reason: String,
    },
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
            Error::InvalidReference { .. }
            | Error::UnsupportedDigestAlgorithm { .. }
            | Error::Config { .. }
            | Error::Unsupported { .. } => ErrorKind::InvalidArgument,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
            Error::Mismatch { .. } | Error::TooLarge { .. } | Error::Limit { .. } => {
                ErrorKind::FailedPrecondition
            }
            Error::Protocol { .. } | Error::AuthResponse { .. } => ErrorKind::Protocol,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Content(e) => e.kind(),
            Error::Images(e) => e.kind(),
            Error::Io { .. } => ErrorKind::Io,
            Error::Registry { status, code, .. } => match code {
                Some(c) if !matches!(c, ErrorCode::Unknown(_)) => c.kind(),
                _ => status_kind(*status),
            },
        }
    }

    /// The registry's error code, for an error the registry reported with one
    /// ([`Error::Registry`]); `None` for every other error.
    ///
    /// ```
    /// use dist_remotes::{Error, ErrorCode, ErrorKind};
    ///
    /// /// What a push does about a refused manifest.
    /// fn next_step(e: &Error) -> &'static str {
    ///     match e.code() {
    ///         Some(ErrorCode::ManifestBlobUnknown) => "push the missing blobs first",
    ///         Some(ErrorCode::ManifestUnknown) => "nothing to delete",
    ///         Some(ErrorCode::Unsupported) => "the registry does not allow it",
    ///         _ if e.kind() == ErrorKind::Unavailable => "retry later",
    ///         _ => "report it",
    ///     }
    /// }
    /// assert_eq!(ErrorCode::parse("MANIFEST_BLOB_UNKNOWN"), ErrorCode::ManifestBlobUnknown);
    /// assert_eq!(ErrorCode::ManifestBlobUnknown.kind(), ErrorKind::FailedPrecondition);
    /// let not_found = Error::NotFound { what: "x".into() };
    /// assert_eq!(next_step(&not_found), "report it");
    /// ```
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Registry { code, .. } => code.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn protocol(host: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Protocol {
            host: host.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// A protocol error caused by `source` (kept reachable through `source()`).
    pub(crate) fn protocol_from(
        host: impl Into<String>,
        reason: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        Error::Protocol {
            host: host.into(),
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn unavailable(host: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unavailable {
            host: host.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// An unavailable error caused by `source` (a reqwest error), kept for `source()`.
    pub(crate) fn unavailable_from(
        host: impl Into<String>,
        reason: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        Error::Unavailable {
            host: host.into(),
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// A refused or malformed reference, keeping the parse error as the source.
    pub(crate) fn invalid_reference(
        reference: &str,
        reason: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::InvalidReference {
            reference: dist_content::elide(reference),
            reason: reason.into(),
            source,
        }
    }

    /// Maps a reference parse error on `reference`: an unsupported digest algorithm is
    /// [`Error::UnsupportedDigestAlgorithm`], as it is for a descriptor's digest; anything
    /// else is [`Error::InvalidReference`] with the parse error as its source.
    pub(crate) fn from_reference(reference: &str) -> impl FnOnce(dist_reference::Error) -> Self {
        move |e| match &e {
            dist_reference::Error::InvalidDigest { digest, .. } if e.is_unsupported_digest() => {
                let algorithm = digest.split_once(':').map_or("", |(a, _)| a);
                Error::UnsupportedDigestAlgorithm {
                    digest: dist_content::elide(digest),
                    algorithm: dist_content::elide(algorithm),
                }
            }
            _ => Error::invalid_reference(
                reference,
                dist_content::elide(&e.to_string()),
                Some(e.into()),
            ),
        }
    }

    /// A configuration file that could not be used, keeping why as the source.
    pub(crate) fn config(
        path: impl Into<String>,
        reason: impl Into<String>,
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            reason: reason.into(),
            source,
        }
    }

    pub(crate) fn mismatch(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Mismatch {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// The error a walk of handlers returned: this crate's own error when a handler (the
    /// fetch or push handler) carried one through the images crate, else the images
    /// crate's error kept as [`Error::Images`] (a content error as [`Error::Content`]).
    pub(crate) fn from_images(e: dist_images::Error) -> Self {
        match e {
            dist_images::Error::Other { kind, source } => match source.downcast::<Error>() {
                Ok(own) => *own,
                Err(source) => Error::Images(dist_images::Error::Other { kind, source }),
            },
            dist_images::Error::Content(c) => c.into(),
            other => Error::Images(other),
        }
    }

    /// Whether a stream that ended with this error may be reopened where it stopped.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// The remotes crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A content error keeps its kind; the content store's "unsupported digest algorithm" (from
/// hashing a descriptor's digest) becomes this crate's own variant, so a caller sees one
/// variant for it whichever crate noticed.
impl From<dist_content::Error> for Error {
    fn from(e: dist_content::Error) -> Self {
        match e {
            dist_content::Error::UnsupportedDigestAlgorithm { digest, algorithm } => {
                Error::UnsupportedDigestAlgorithm { digest, algorithm }
            }
            other => Error::Content(other),
        }
    }
}
