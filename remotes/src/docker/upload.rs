//! Chunked blob uploads that resume from the registry's offset: `PATCH` with
//! `Content-Range`, the newest `Location` followed after every answer, `GET` of the session
//! after a failure or a `416`, a closing `PUT ?digest=`, and the session kept on disk
//! between runs when a state directory is set.

use std::sync::Arc;

use dist_content::{Provider, ReaderAt};
use oci_spec::image::Descriptor;
use reqwest::header::{HeaderMap, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode};

use super::client::{Payload, Request, UploadProgress};
use super::push::{
    DockerPusher, Opened, finish, read_stream, sized_reader, unexpected, with_digest,
};
use super::upload_state::StateFile;
use crate::{Error, Result};

/// Where an upload session stands: its newest URL and the bytes the registry has.
#[derive(Debug, Clone)]
struct Session {
    url: url::Url,
    offset: u64,
    /// The registry's `OCI-Chunk-Min-Length`, from when the session was opened.
    min_chunk: Option<u64>,
}

/// What one `PATCH` did.
enum Patched {
    /// The registry took the chunk (or says how much it has).
    Accepted(Session),
    /// The registry refused the chunk in a way the session's status explains (`416`, an
    /// unknown or invalid session): ask it where it stands.
    AskStatus(String),
}

/// Counts failures in a row without progress, and waits between them.
struct Failures {
    count: u32,
    max: u32,
}

impl Failures {
    /// Records a failure; fails with `last` once the retry policy's attempts are spent,
    /// else waits its backoff.
    async fn record(&mut self, pusher: &DockerPusher, last: Error) -> Result<()> {
        self.count = self.count.saturating_add(1);
        if self.count >= self.max {
            return Err(last);
        }
        tracing::debug!(attempt = self.count, error = %last, "chunked upload: asking where it stands");
        tokio::time::sleep(pusher.repo.shared.opts.retry.backoff(self.count)).await;
        Ok(())
    }
}

impl DockerPusher {
    /// Uploads `desc` in chunks of `chunk` bytes (raised to the registry's
    /// `OCI-Chunk-Min-Length`). Continues, in order of preference: a session saved in the
    /// state directory that the registry still has, the session a mount opened, or a new
    /// one.
    pub(super) async fn push_chunked(
        &self,
        desc: &Descriptor,
        provider: &dyn Provider,
        chunk: u64,
        opened: Option<Opened>,
    ) -> Result<()> {
        let digest = desc.digest();
        let size = desc.size();
        let what = self.what(digest.as_ref());
        let reader = sized_reader(desc, provider).await?;
        let opts = &self.repo.shared.opts;
        let state = opts
            .upload
            .state_dir
            .as_deref()
            .map(|dir| StateFile::new(dir, &self.repo.registry, &self.repo.name, digest));

        let mut session = None;
        if let Some(saved) = match &state {
            Some(st) => st.load().await,
            None => None,
        } {
            match url::Url::parse(&saved.url) {
                Ok(url) => match self.status(&url, &what, saved.min_chunk).await {
                    Ok(Some(s)) => {
                        tracing::debug!(digest = %digest, offset = s.offset, "resuming saved upload");
                        session = Some(s);
                    }
                    Ok(None) => tracing::debug!(digest = %digest, "saved upload is gone"),
                    Err(e) => {
                        tracing::debug!(digest = %digest, error = %e, "saved upload unreadable")
                    }
                },
                Err(e) => tracing::debug!(digest = %digest, error = %e, "saved upload URL invalid"),
            }
        }
        let mut session = match (session, opened) {
            (Some(s), _) => s,
            (None, Some(o)) => fresh(o),
            (None, None) => fresh(self.open(&what).await?),
        };

        let mut failures = Failures {
            count: 0,
            max: opts.retry.max_attempts.max(1),
        };
        let mut ask_status = false;
        loop {
            if ask_status {
                match self.status(&session.url, &what, session.min_chunk).await {
                    Ok(Some(s)) => session = s,
                    Ok(None) => {
                        // The registry dropped the session: start over with a new one.
                        tracing::debug!(digest = %digest, "upload session gone, starting over");
                        session = fresh(self.open(&what).await?);
                    }
                    Err(e) if e.is_transient() => {
                        failures.record(self, e).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                ask_status = false;
                save(state.as_ref(), &session).await?;
            }
            if session.offset > size {
                return Err(Error::protocol(
                    session.url.host_str().unwrap_or("?"),
                    format!(
                        "{what}: the registry says it has {} of {size} bytes",
                        session.offset
                    ),
                ));
            }
            if session.offset == size {
                break;
            }
            let before = session.offset;
            let chunk = chunk.max(session.min_chunk.unwrap_or(1));
            let end = before.saturating_add(chunk).min(size).saturating_sub(1);
            match self.patch(&session, &reader, end, &what).await {
                Ok(Patched::Accepted(next)) => {
                    session = next;
                    save(state.as_ref(), &session).await?;
                    if session.offset > before {
                        failures.count = 0;
                    } else {
                        let e = Error::protocol(
                            session.url.host_str().unwrap_or("?"),
                            format!("{what}: a chunk at {before} was accepted without progress"),
                        );
                        failures.record(self, e).await?;
                    }
                }
                Ok(Patched::AskStatus(reason)) => {
                    let host = session.url.host_str().unwrap_or("?").to_string();
                    failures.record(self, Error::protocol(host, reason)).await?;
                    ask_status = true;
                }
                Err(e) if e.is_transient() => {
                    failures.record(self, e).await?;
                    ask_status = true;
                }
                Err(e) => return Err(e),
            }
        }

        let mut put = Request::new(Method::PUT, String::new());
        put.url = Some(with_digest(session.url.clone(), digest).to_string());
        put.push = true;
        let done = match self.send(put).await {
            Ok((host, resp)) => finish(&host, &what, resp, digest).await,
            Err(e) => Err(e),
        };
        // A transient failure keeps the state: the session may still be completed.
        if let Some(st) = &state
            && !matches!(&done, Err(e) if e.is_transient())
        {
            st.remove().await;
        }
        done
    }

    /// Sends bytes `session.offset..=end` as one `PATCH`.
    async fn patch(
        &self,
        session: &Session,
        reader: &Arc<dyn ReaderAt>,
        end: u64,
        what: &str,
    ) -> Result<Patched> {
        let start = session.offset;
        let len = end.saturating_sub(start).saturating_add(1);
        let progress = Arc::new(UploadProgress::new());
        let stream = read_stream(
            reader.clone(),
            start,
            end.saturating_add(1),
            progress.clone(),
        );
        let mut req = Request::new(Method::PATCH, String::new());
        req.url = Some(session.url.to_string());
        req.push = true;
        req.content_range = Some((start, end));
        req.body = Some(Payload::Once(
            Arc::new(std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(
                stream,
            )))),
            len,
            progress,
        ));
        let (host, resp) = self.send(req).await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::OK => {
                let sent = end.saturating_add(1);
                Ok(Patched::Accepted(next_session(
                    &host,
                    what,
                    &resp,
                    &session.url,
                    Some(sent),
                    session.min_chunk,
                )?))
            }
            s @ (StatusCode::RANGE_NOT_SATISFIABLE
            | StatusCode::NOT_FOUND
            | StatusCode::BAD_REQUEST) => Ok(Patched::AskStatus(format!(
                "{}: chunk {start}-{end} answered {s}",
                dist_content::Elided(what)
            ))),
            s => Err(unexpected(&host, what, s)),
        }
    }

    /// Asks the upload session at `url` where it stands (`GET`, answered `204` with
    /// `Range: 0-<last>`); `None` when the registry no longer has it.
    async fn status(
        &self,
        url: &url::Url,
        what: &str,
        min_chunk: Option<u64>,
    ) -> Result<Option<Session>> {
        let mut get = Request::new(Method::GET, String::new());
        get.url = Some(url.to_string());
        get.push = true;
        let (host, resp) = self.send(get).await?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::ACCEPTED => {
                next_session(&host, what, &resp, url, None, min_chunk).map(Some)
            }
            s if s.is_client_error() => {
                tracing::debug!(status = %s, "upload session unknown");
                Ok(None)
            }
            s => Err(unexpected(&host, what, s)),
        }
    }
}

/// A new session from `POST` (or a mount's `202`): offset 0, with the registry's minimum
/// chunk size.
fn fresh(o: Opened) -> Session {
    Session {
        url: o.url,
        offset: 0,
        min_chunk: o.min_chunk,
    }
}

/// Records the session in the state file, when there is one.
async fn save(state: Option<&StateFile>, session: &Session) -> Result<()> {
    match state {
        Some(st) => {
            st.save(session.url.as_str(), session.offset, session.min_chunk)
                .await
        }
        None => Ok(()),
    }
}

/// The session after an answer: its newest `Location` (else the old URL) and the offset its
/// `Range` gives (else `sent`, what was sent in total).
fn next_session(
    host: &str,
    what: &str,
    resp: &Response,
    old: &url::Url,
    sent: Option<u64>,
    min_chunk: Option<u64>,
) -> Result<Session> {
    let url = match resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) {
        Some(l) => resp
            .url()
            .join(l)
            .map_err(|e| Error::protocol_from(host, format!("{what}: bad upload Location"), e))?,
        None => old.clone(),
    };
    let offset = match range_offset(resp.headers(), sent) {
        Ok(Some(n)) => n,
        Ok(None) => sent.unwrap_or(0),
        Err(bad) => {
            return Err(Error::protocol(
                host,
                format!(
                    "{what}: bad upload Range \"{}\"",
                    dist_content::Elided(&bad)
                ),
            ));
        }
    };
    Ok(Session {
        url,
        offset,
        min_chunk,
    })
}

/// The bytes an upload `Range: 0-<last>` header says the registry has (`last + 1`).
///
/// Registries answer `0-0` both for an empty session and for one byte; it means one byte
/// only when that is what was `sent`.
fn range_offset(
    headers: &HeaderMap,
    sent: Option<u64>,
) -> std::result::Result<Option<u64>, String> {
    let Some(v) = headers.get(RANGE) else {
        return Ok(None);
    };
    let raw = v.to_str().map_err(|_| "not ASCII".to_string())?;
    let s = raw.trim();
    let s = s.strip_prefix("bytes=").unwrap_or(s);
    let (first, last) = s.split_once('-').ok_or_else(|| raw.to_string())?;
    let first: u64 = first.trim().parse().map_err(|_| raw.to_string())?;
    let last: u64 = last.trim().parse().map_err(|_| raw.to_string())?;
    if first != 0 {
        return Err(raw.to_string());
    }
    if last == 0 && sent != Some(1) {
        return Ok(Some(0));
    }
    Ok(Some(last.saturating_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            RANGE,
            reqwest::header::HeaderValue::from_str(range).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    #[test]
    fn an_upload_range_gives_the_next_offset() {
        assert_eq!(range_offset(&headers("0-1023"), None), Ok(Some(1024)));
        assert_eq!(range_offset(&headers("bytes=0-9"), Some(10)), Ok(Some(10)));
        assert_eq!(range_offset(&HeaderMap::new(), Some(5)), Ok(None));
    }

    #[test]
    fn zero_zero_is_empty_unless_one_byte_was_sent() {
        assert_eq!(range_offset(&headers("0-0"), None), Ok(Some(0)));
        assert_eq!(range_offset(&headers("0-0"), Some(4096)), Ok(Some(0)));
        assert_eq!(range_offset(&headers("0-0"), Some(1)), Ok(Some(1)));
    }

    #[test]
    fn a_garbage_or_offset_range_is_refused() {
        for bad in ["5-9", "x-1", "0-", "nonsense", "0-99999999999999999999999"] {
            assert!(range_offset(&headers(bad), None).is_err(), "{bad}");
        }
    }
}
