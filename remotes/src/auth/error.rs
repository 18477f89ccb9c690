//! Why a registry's authentication answer could not be used.

/// A `WWW-Authenticate` header or token response that cannot be used. Every variant quotes
/// at most an elided snippet of the input (see [`dist_content::elide`]), and never a
/// token response body, which may hold a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The `WWW-Authenticate` value is not a list of challenges.
    #[error("WWW-Authenticate \"{header}\": {reason}")]
    Challenge {
        /// The header value, on one line (control characters as spaces) and elided.
        header: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// The token response is not a JSON object.
    #[error("token response ({len} bytes) is not a JSON object")]
    TokenNotJson {
        /// The body's length.
        len: usize,
        /// The JSON error (position and kind; it never quotes the body).
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A field of the token response has the wrong type (`token` a number, `expires_in`
    /// a string).
    #[error("token response: {field} is not {expected}")]
    TokenField {
        /// The field's name.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// Neither `token` nor `access_token` holds a token.
    #[error("token response without a token")]
    NoToken,
    /// The token has characters an `Authorization` header cannot carry.
    #[error("token response: the token has characters not allowed in an HTTP header")]
    TokenNotHeaderSafe,
}

/// `s` for an error message: control characters (line breaks included) become spaces so
/// the message stays on one line, and the result is elided to a few hundred bytes.
pub(crate) fn snippet(s: &str) -> String {
    let line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    dist_content::elide(&line)
}
