//! [`AccessLog`]: the requests a [`Registry`](crate::Registry) started with its access log
//! on has served, and what they uploaded.
//!
//! distribution's access log (Apache combined format) names method, URI and status but
//! not request sizes. Upload sizes come from the upload sessions instead: every request
//! of a session carries the registry's signed `_state`, whose JSON names the session's
//! offset before that request, and the registry's storage holds the committed blobs (and
//! the data of unfinished sessions). A session's uploaded bytes are its size at the end
//! of the window minus its offset at the first request seen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// `GET`, `HEAD`, `POST`, `PATCH`, `PUT`, `DELETE`.
    pub method: String,
    /// The request URI (path and query).
    pub uri: String,
    /// The response status.
    pub status: u16,
    /// For a request on an upload session: its id and its offset before this request.
    pub upload: Option<(String, u64)>,
}

impl Access {
    /// The URI's path.
    pub fn path(&self) -> &str {
        self.uri.split_once('?').map_or(&self.uri, |(p, _)| p)
    }

    /// The value of query parameter `name`, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, q) = self.uri.split_once('?')?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether this request sends blob data: a `PATCH` or `PUT` on an upload session.
    pub fn is_blob_write(&self) -> bool {
        matches!(self.method.as_str(), "PATCH" | "PUT") && self.path().contains("/blobs/uploads/")
    }

    /// Whether this is a cross-repository mount the registry did (`POST ?mount=`, 201).
    pub fn is_mount(&self) -> bool {
        self.method == "POST" && self.status == 201 && self.query("mount").is_some()
    }

    fn parse(line: &str) -> Option<Access> {
        // `ip - user [date] "METHOD URI HTTP/1.1" status size "referer" "agent"`
        let (_, rest) = line.split_once("] \"")?;
        let (request, rest) = rest.split_once("\" ")?;
        let mut parts = request.split(' ');
        let method = parts.next()?.to_string();
        let uri = parts.next()?.to_string();
        if !parts.next()?.starts_with("HTTP/") {
            return None;
        }
        let status = rest.split(' ').next()?.parse().ok()?;
        let mut access = Access {
            method,
            uri,
            status,
            upload: None,
        };
        access.upload = access.query("_state").and_then(|s| upload_state(&s));
        Some(access)
    }
}

/// The session id and offset in a `_state` token: URL-safe base64 of a 32-byte HMAC
/// followed by JSON (`{"Name":…,"UUID":…,"Offset":…,"StartedAt":…}`).
fn upload_state(token: &str) -> Option<(String, u64)> {
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token))
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(raw.get(32..)?).ok()?;
    Some((
        json.get("UUID")?.as_str()?.to_string(),
        json.get("Offset")?.as_u64()?,
    ))
}

/// The requests of a registry's access log, in order.
#[derive(Debug, Clone, Default)]
pub struct AccessLog {
    entries: Vec<Access>,
    /// The registry's storage root (`rootdirectory`).
    data: PathBuf,
}

impl AccessLog {
    /// The access lines of `log` (other log lines are skipped), for a registry storing
    /// under `data`.
    pub fn parse(log: &str, data: &Path) -> Self {
        AccessLog {
            entries: log.lines().filter_map(Access::parse).collect(),
            data: data.to_path_buf(),
        }
    }

    /// The requests.
    pub fn entries(&self) -> &[Access] {
        &self.entries
    }

    /// How many requests were logged: a mark for [`since`](AccessLog::since).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The requests after the first `mark`.
    pub fn since(&self, mark: usize) -> AccessLog {
        AccessLog {
            entries: self.entries.get(mark..).unwrap_or_default().to_vec(),
            data: self.data.clone(),
        }
    }

    /// How many `PATCH` and `PUT` requests sent blob data.
    pub fn blob_writes(&self) -> usize {
        self.entries.iter().filter(|a| a.is_blob_write()).count()
    }

    /// How many blobs were mounted from another repository.
    pub fn mounts(&self) -> usize {
        self.entries.iter().filter(|a| a.is_mount()).count()
    }

    /// The sizes of the blobs these requests completed (a successful `PUT ?digest=` on an
    /// upload session), summed.
    pub fn committed_blob_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|a| a.method == "PUT" && a.is_blob_write() && (200..300).contains(&a.status))
            .filter_map(|a| a.query("digest").and_then(|d| self.blob_size(&d)))
            .sum()
    }

    /// Blob bytes the registry received in these requests, over all upload sessions.
    pub fn uploaded_blob_bytes(&self) -> u64 {
        // Per session: (repository, offset at its first request here, size at the end).
        let mut sessions: BTreeMap<String, (String, u64, u64)> = BTreeMap::new();
        for a in &self.entries {
            let Some((uuid, offset)) = &a.upload else {
                continue;
            };
            let repo = a
                .path()
                .strip_prefix("/v2/")
                .and_then(|p| p.split_once("/blobs/uploads/"))
                .map_or_else(String::new, |(name, _)| name.to_string());
            let s = sessions
                .entry(uuid.clone())
                .or_insert_with(|| (repo, *offset, *offset));
            s.2 = s.2.max(*offset);
            if a.method == "PUT"
                && (200..300).contains(&a.status)
                && let Some(size) = a.query("digest").and_then(|d| self.blob_size(&d))
            {
                s.2 = s.2.max(size);
            }
        }
        sessions
            .iter()
            .map(|(uuid, (repo, start, end))| {
                let stored = self.upload_size(repo, uuid).unwrap_or(0);
                (*end).max(stored).saturating_sub(*start)
            })
            .sum()
    }

    fn v2(&self) -> PathBuf {
        self.data.join("docker/registry/v2")
    }

    /// The size of the committed blob `digest` (`alg:hex`).
    fn blob_size(&self, digest: &str) -> Option<u64> {
        let (alg, hex) = digest.split_once(':')?;
        let path = self
            .v2()
            .join("blobs")
            .join(alg)
            .join(hex.get(..2)?)
            .join(hex)
            .join("data");
        std::fs::metadata(path).ok().map(|m| m.len())
    }

    /// The data an unfinished upload session holds.
    fn upload_size(&self, repo: &str, uuid: &str) -> Option<u64> {
        let path = self
            .v2()
            .join("repositories")
            .join(repo)
            .join("_uploads")
            .join(uuid)
            .join("data");
        std::fs::metadata(path).ok().map(|m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_lines_parse_with_their_upload_state() {
        let json = br#"{"Name":"t","UUID":"u-1","Offset":100000,"StartedAt":"x"}"#;
        let mut raw = vec![0u8; 32];
        raw.extend_from_slice(json);
        let token = base64::engine::general_purpose::URL_SAFE.encode(&raw);
        let token = token.replace('=', "%3D");
        let log = format!(
            "time=\"x\" level=info msg=\"response completed\"\n\
             127.0.0.1 - - [02/Dec/2026:06:20:08 +0000] \"PATCH /v2/t/blobs/uploads/u-1?_state={token} HTTP/1.1\" 202 0 \"\" \"curl/7.88.1\"\n\
             127.0.0.1 - user [02/Dec/2026:06:20:08 +0000] \"POST /v2/t/blobs/uploads/?mount=sha256:ab&from=s HTTP/1.1\" 201 0 \"\" \"c\"\n"
        );
        let log = AccessLog::parse(&log, Path::new("/nonexistent"));
        assert_eq!(log.len(), 2);
        assert_eq!(log.entries()[0].upload, Some(("u-1".to_string(), 100000)));
        assert_eq!(log.blob_writes(), 1);
        assert_eq!(log.mounts(), 1);
        assert_eq!(log.since(1).blob_writes(), 0);
    }
}
