//! [`ErrorKind`]: the handful of kinds every dist crate's `Error` reports.
//!
//! It lives here, in the lowest crate, so that one enum serves all of them: a caller matches
//! `dist_reference::ErrorKind` (re-exported as `dist_content::ErrorKind` and from every other
//! crate) whichever crate the error came from.

use std::fmt;

/// What went wrong, in the handful of kinds a caller branches on.
///
/// Every dist crate's `Error` reports one of these through its `kind()`; they mirror
/// containerd's `errdefs`. The kinds mean the same in every crate, so one `match` serves
/// errors from all of them.
///
/// ```
/// use dist_reference::{ErrorKind, Reference};
///
/// let err = "Docker.io/Library/Redis".parse::<Reference>().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The blob, ingest, image, snapshot, tag or manifest does not exist.
    NotFound,
    /// The thing being created exists already (for content: the blob is committed).
    AlreadyExists,
    /// The resource is busy or locked (another writer holds the ingest ref), or a
    /// remote is temporarily unreachable: retrying later may succeed.
    Unavailable,
    /// A precondition did not hold: size or digest mismatch, wrong state, a bound exceeded.
    FailedPrecondition,
    /// The input is malformed or not supported: a bad reference or digest, an unsupported
    /// digest algorithm, a bad archive, a bad configuration file.
    InvalidArgument,
    /// The registry refused the credentials (or none were given).
    Unauthorized,
    /// An operating-system I/O error.
    Io,
    /// The peer broke the protocol (unexpected status, malformed response).
    Protocol,
}

impl ErrorKind {
    /// A stable snake-case name for logs and metrics (`"not_found"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
        }
    }
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
