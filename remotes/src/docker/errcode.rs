//! Turning a registry's error response into [`Error::Registry`] with its typed
//! [`ErrorCode`]: the distribution-spec body `{"errors":[{"code","message","detail"}]}`,
//! read within a bound.

use dist_content::elide;
use reqwest::Response;

use crate::{Error, ErrorCode};

/// The most of an error body read: the spec's body is a few hundred bytes; a registry that
/// sends more is not read further.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;

/// The error for a response the caller did not expect: its status, and the first error
/// code and the messages of its body when it is the spec's JSON (its text, elided,
/// otherwise). `what` names the request (`DELETE manifests/sha256:…`).
///
/// The body is read up to [`MAX_ERROR_BODY`] bytes; each read is bounded by the client's
/// read timeout, and a body that breaks off leaves what was read.
pub(crate) async fn unexpected_response(host: &str, what: &str, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let body = read_bounded(resp, MAX_ERROR_BODY).await;
    let (code, message) = parse_error_body(&body);
    Error::Registry {
        host: host.to_string(),
        what: elide(what),
        status,
        code,
        message,
    }
}

/// Up to `max` bytes of `resp`'s body; a failed read ends it.
async fn read_bounded(mut resp: Response, max: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < max {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = max.saturating_sub(body.len());
                body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&chunk));
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// The first code of a distribution-spec error body, and every error's code, message and
/// detail as one elided line. A body that is not that JSON gives no code and its text.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<ErrorCode>, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
        let text = String::from_utf8_lossy(body);
        return (first_code(&text).map(ErrorCode::parse), elide(text.trim()));
    };
    let code = parsed
        .errors
        .iter()
        .find_map(|e| e.code.as_deref())
        .map(ErrorCode::parse);
    let parts: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| {
            let mut s = e.message.clone().unwrap_or_default();
            match &e.detail {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(d)) => s.push_str(&format!(" ({d})")),
                Some(d) => s.push_str(&format!(" ({d})")),
            }
            s
        })
        .collect();
    (code, elide(&parts.join("; ")))
}

/// The value of the first `"code": "…"` in a body that is not whole JSON (cut at
/// [`MAX_ERROR_BODY`]): registries put the code before the message.
fn first_code(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("\"code\"")?;
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let (code, _) = rest.split_once('"')?;
    let valid = !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    valid.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_code_of_a_spec_body_is_typed_and_messages_are_kept() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:22"},{"code":"DENIED","message":"no"}]}"#;
        let (code, message) = parse_error_body(body);
        assert_eq!(code, Some(ErrorCode::ManifestBlobUnknown));
        assert_eq!(message, "blob unknown to registry (sha256:22); no");
    }

    #[test]
    fn an_object_detail_is_quoted_as_json() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        let (code, message) = parse_error_body(body);
        assert_eq!(code, Some(ErrorCode::ManifestUnknown));
        assert_eq!(message, r#"manifest unknown ({"Tag":"nope"})"#);
    }

    #[test]
    fn a_body_that_is_not_the_spec_json_gives_no_code_and_its_text() {
        let (code, message) = parse_error_body(b"404 page not found\n");
        assert_eq!(code, None);
        assert_eq!(message, "404 page not found");
    }

    #[test]
    fn the_code_of_a_body_cut_short_is_still_found() {
        let (code, _) =
            parse_error_body(br#"{"errors": [{"code" : "NAME_UNKNOWN", "message": "nam"#);
        assert_eq!(code, Some(ErrorCode::NameUnknown));
        let (code, _) = parse_error_body(br#"{"errors":[{"code":"lower case"#);
        assert_eq!(code, None);
    }

    #[test]
    fn a_huge_message_is_elided() {
        let body = format!(
            r#"{{"errors":[{{"code":"DENIED","message":"{}"}}]}}"#,
            "m".repeat(10_000)
        );
        let (code, message) = parse_error_body(body.as_bytes());
        assert_eq!(code, Some(ErrorCode::Denied));
        assert!(message.len() < 400, "{}", message.len());
        assert!(message.contains("bytes)"), "{message}");
    }
}
