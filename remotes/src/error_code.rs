//! The registry error codes of the OCI distribution spec, typed for callers to branch on.

use crate::ErrorKind;

/// The kind of an error status without a (known) error code.
pub(crate) fn status_kind(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::Unauthorized,
        405 | 409 | 412 | 416 => ErrorKind::FailedPrecondition,
        429 | 500..=599 => ErrorKind::Unavailable,
        400..=499 => ErrorKind::InvalidArgument,
        _ => ErrorKind::Protocol,
    }
}

/// An error code of the OCI distribution spec (and Docker's registry API), as a registry
/// puts it in its JSON error body. Callers branch on it rather than on the HTTP status.
///
/// Each code has the [`ErrorKind`] of [`ErrorCode::kind`]: the `*_UNKNOWN` codes of
/// things looked up are `NotFound`, but `MANIFEST_BLOB_UNKNOWN` (a manifest names a blob
/// the registry lacks) is `FailedPrecondition`, as is `BLOB_UPLOAD_INVALID` (the upload
/// session is not where the client thinks) and `UNSUPPORTED` (the registry does not allow
/// the operation, such as a delete on a registry with deletes off): the request was well
/// formed, the registry's state refused it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: the blob is not in the repository.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: the upload was refused (an out-of-order chunk, a stale
    /// session state).
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: the upload session does not exist (expired or cancelled).
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: the content does not match the digest given.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: a manifest names a blob the repository does not have.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: the manifest could not be parsed or verified.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: no manifest under that tag or digest.
    ManifestUnknown,
    /// `NAME_INVALID`: the repository name is malformed.
    NameInvalid,
    /// `NAME_UNKNOWN`: the repository is not known to the registry.
    NameUnknown,
    /// `SIZE_INVALID`: the content length does not match.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication is required.
    Unauthorized,
    /// `DENIED`: the credentials do not allow this.
    Denied,
    /// `UNSUPPORTED`: the registry does not offer the operation.
    Unsupported,
    /// `TOOMANYREQUESTS`: rate limited.
    TooManyRequests,
    /// Any other code, as sent (elided).
    Unknown(String),
}

impl ErrorCode {
    /// The code for `code` as a registry spells it (`"MANIFEST_UNKNOWN"`).
    pub fn parse(code: &str) -> Self {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Unknown(dist_content::elide(other)),
        }
    }

    /// The code as a registry spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unknown(s) => s,
        }
    }

    /// The kind a caller that does not know registry codes branches on (see the type's
    /// documentation for the choices). An unknown code is `Protocol`; [`Error::kind`](crate::Error::kind)
    /// then goes by the status instead.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => ErrorKind::NotFound,
            ErrorCode::ManifestBlobUnknown
            | ErrorCode::BlobUploadInvalid
            | ErrorCode::Unsupported => ErrorKind::FailedPrecondition,
            ErrorCode::DigestInvalid
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => ErrorKind::InvalidArgument,
            ErrorCode::Unauthorized | ErrorCode::Denied => ErrorKind::Unauthorized,
            ErrorCode::TooManyRequests => ErrorKind::Unavailable,
            ErrorCode::Unknown(_) => ErrorKind::Protocol,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn every_known_code_round_trips_through_its_spelling() {
        let codes = [
            ErrorCode::BlobUnknown,
            ErrorCode::BlobUploadInvalid,
            ErrorCode::BlobUploadUnknown,
            ErrorCode::DigestInvalid,
            ErrorCode::ManifestBlobUnknown,
            ErrorCode::ManifestInvalid,
            ErrorCode::ManifestUnknown,
            ErrorCode::NameInvalid,
            ErrorCode::NameUnknown,
            ErrorCode::SizeInvalid,
            ErrorCode::Unauthorized,
            ErrorCode::Denied,
            ErrorCode::Unsupported,
            ErrorCode::TooManyRequests,
        ];
        for c in codes {
            assert_eq!(ErrorCode::parse(c.as_str()), c);
        }
        assert_eq!(
            ErrorCode::parse("SOMETHING_NEW"),
            ErrorCode::Unknown("SOMETHING_NEW".into())
        );
    }

    #[test]
    fn a_registry_error_takes_its_kind_from_the_code_else_the_status() {
        let e = |status, code| Error::Registry {
            host: "h".into(),
            what: "w".into(),
            status,
            code,
            message: String::new(),
        };
        assert_eq!(
            e(404, Some(ErrorCode::ManifestUnknown)).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            e(400, Some(ErrorCode::ManifestBlobUnknown)).kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(
            e(405, Some(ErrorCode::Unsupported)).kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(
            e(403, Some(ErrorCode::Denied)).kind(),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            e(404, Some(ErrorCode::Unknown("X".into()))).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(e(404, None).kind(), ErrorKind::NotFound);
        assert_eq!(e(503, None).kind(), ErrorKind::Unavailable);
        assert_eq!(e(400, None).kind(), ErrorKind::InvalidArgument);
        assert_eq!(e(200, None).kind(), ErrorKind::Protocol);
    }

    #[test]
    fn an_unknown_code_is_elided() {
        let long = "X".repeat(5000);
        let ErrorCode::Unknown(s) = ErrorCode::parse(&long) else {
            panic!("a long code is unknown");
        };
        assert!(s.len() < 400, "{}", s.len());
    }
}
