//! Fetching manifests and blobs: ranged requests, resume on broken bodies, verification.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::Descriptor;
use reqwest::header::CONTENT_RANGE;
use reqwest::{Method, StatusCode};

use super::client::{Repository, Request, error_chain};
use super::resolve::header_digest;
use crate::media::{is_manifest, manifest_accept};
use crate::verify::verified;
use crate::{ByteStream, Error, Fetcher, Result};

/// Fetches content of one repository from a Docker/OCI registry.
///
/// Manifests and indexes come from `manifests/<digest>` (bounded in size), everything else
/// from `blobs/<digest>`. Every stream is verified; a body that breaks or stalls is
/// reopened at the current offset with `Range`.
pub struct DockerFetcher {
    repo: Arc<Repository>,
}

impl std::fmt::Debug for DockerFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerFetcher")
            .field("registry", &self.repo.registry)
            .field("name", &self.repo.name)
            .finish()
    }
}

/// What one open body stream is for.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) repo: Arc<Repository>,
    pub(super) path: String,
    pub(super) manifest: bool,
    /// The `Accept` header: the descriptor's media type (or every manifest type), then any.
    pub(super) accept: String,
    /// For error messages: `host/repo@digest`.
    pub(super) what: String,
}

impl DockerFetcher {
    pub(crate) fn new(repo: Arc<Repository>) -> Self {
        DockerFetcher { repo }
    }
}

#[async_trait]
impl Fetcher for DockerFetcher {
    async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> Result<ByteStream> {
        let size = desc.size();
        let digest = desc.digest();
        let what = format!("{}/{}@{digest}", self.repo.registry, self.repo.name);
        if offset > size {
            return Err(Error::mismatch(
                what,
                format!("offset {offset} is past the size {size}"),
            ));
        }
        let manifest = is_manifest(desc.media_type());
        let max = self.repo.shared.opts.max_manifest_size;
        if manifest && size > max {
            return Err(Error::TooLarge {
                what,
                size,
                limit: max,
            });
        }
        if offset == size {
            return verified(Box::pin(futures::stream::empty()), digest, size, offset);
        }
        let kind = if manifest { "manifests" } else { "blobs" };
        let target = Target {
            repo: self.repo.clone(),
            path: format!("{kind}/{digest}"),
            manifest,
            accept: if manifest {
                manifest_accept()
            } else {
                format!("{}, */*", desc.media_type())
            },
            what,
        };
        let body = match self.repo.shared.opts.parallel {
            Some(p) if !manifest && size - offset >= p.min_size => {
                super::parallel::fetch(target, offset, size, p).await?
            }
            _ => {
                let first = open(&target, offset, None, Some(digest)).await?;
                resuming(target, first, offset, size)
            }
        };
        verified(body, digest, size, offset)
    }
}

/// Opens bytes `start..=end` (or `start..` when `end` is `None`) as a stream that yields
/// exactly from `start`: when the server ignores `Range` and sends the whole body, the
/// prefix is skipped.
pub(super) async fn open(
    t: &Target,
    start: u64,
    end: Option<u64>,
    digest: Option<&oci_spec::image::Digest>,
) -> Result<ByteStream> {
    let mut req = Request::new(Method::GET, t.path.clone());
    req.accept = Some(t.accept.clone());
    if start > 0 || end.is_some() {
        req.range = Some((start, end));
    }
    let (host, resp) = t.repo.send(|c| c.pull, &req).await?;
    let status = resp.status();
    let skip = match status {
        StatusCode::OK => start,
        StatusCode::PARTIAL_CONTENT => {
            if let Some(first) = content_range_start(resp.headers())
                && first != start
            {
                return Err(Error::protocol(
                    &host,
                    format!("{}: asked for bytes from {start}, got from {first}", t.what),
                ));
            }
            0
        }
        StatusCode::NOT_FOUND => {
            return Err(Error::NotFound {
                what: t.what.clone(),
            });
        }
        StatusCode::FORBIDDEN => {
            return Err(Error::Unauthorized {
                host,
                reason: format!("{}: forbidden", t.what),
            });
        }
        s => {
            return Err(Error::protocol(
                &host,
                format!("{}: unexpected {s}", t.what),
            ));
        }
    };
    if t.manifest
        && let (Some(expected), Some(served)) = (digest, header_digest(resp.headers(), &host)?)
        && *expected != served
    {
        return Err(Error::mismatch(
            &t.what,
            format!("registry says Docker-Content-Digest {served}"),
        ));
    }
    let stall = t.repo.shared.opts.stall_timeout;
    let h = host.clone();
    let what = t.what.clone();
    let body = resp.bytes_stream().map_err(move |e| {
        Error::unavailable(&h, format!("{what}: reading body: {}", error_chain(&e)))
    });
    let body = with_stall_timeout(Box::pin(body), stall, host, t.what.clone());
    let body = skip_prefix(body, skip);
    Ok(match end {
        Some(e) => take(body, e + 1 - start),
        None => body,
    })
}

fn content_range_start(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = v.trim().strip_prefix("bytes")?.trim();
    range.split('-').next()?.trim().parse().ok()
}

/// Ends the stream with an `Unavailable` error when no chunk arrives for `stall`.
fn with_stall_timeout(
    inner: ByteStream,
    stall: Duration,
    host: String,
    what: String,
) -> ByteStream {
    Box::pin(futures::stream::unfold(Some(inner), move |st| {
        let (host, what) = (host.clone(), what.clone());
        async move {
            let mut inner = st?;
            match tokio::time::timeout(stall, inner.next()).await {
                Ok(Some(item)) => Some((item, Some(inner))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(Error::unavailable(
                        host,
                        format!("{what}: no data for {stall:?}"),
                    )),
                    None,
                )),
            }
        }
    }))
}

/// Drops the first `n` bytes.
fn skip_prefix(inner: ByteStream, n: u64) -> ByteStream {
    if n == 0 {
        return inner;
    }
    Box::pin(futures::stream::unfold(
        (inner, n),
        |(mut inner, mut left)| async move {
            loop {
                match inner.next().await? {
                    Ok(mut b) => {
                        if left == 0 {
                            return Some((Ok(b), (inner, 0)));
                        }
                        let cut = left.min(b.len() as u64) as usize;
                        left -= cut as u64;
                        let rest = b.split_off(cut);
                        if !rest.is_empty() {
                            return Some((Ok(rest), (inner, left)));
                        }
                    }
                    Err(e) => return Some((Err(e), (inner, left))),
                }
            }
        },
    ))
}

/// Passes at most `n` bytes.
fn take(inner: ByteStream, n: u64) -> ByteStream {
    Box::pin(futures::stream::unfold(
        (inner, n),
        |(mut inner, left)| async move {
            if left == 0 {
                return None;
            }
            match inner.next().await? {
                Ok(mut b) => {
                    if b.len() as u64 > left {
                        b.truncate(left as usize);
                    }
                    let l = left - b.len() as u64;
                    Some((Ok::<Bytes, Error>(b), (inner, l)))
                }
                Err(e) => Some((Err(e), (inner, left))),
            }
        },
    ))
}

/// Streams bytes `pos..end` starting from the already-open `first`; when the body breaks,
/// stalls or ends early, reopens it at the current position, giving up after the
/// configured number of reopenings that brought no byte.
pub(super) fn resuming(t: Target, first: ByteStream, pos: u64, end: u64) -> ByteStream {
    struct State {
        t: Target,
        cur: Option<ByteStream>,
        pos: u64,
        end: u64,
        fruitless: u32,
        last: Option<Error>,
        done: bool,
    }
    let state = State {
        t,
        cur: Some(first),
        pos,
        end,
        fruitless: 0,
        last: None,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let mut cur = match st.cur.take() {
                Some(c) => c,
                None => {
                    let max = st.t.repo.shared.opts.max_resumes_without_progress;
                    if st.fruitless >= max {
                        st.done = true;
                        let e = st.last.take().unwrap_or_else(|| {
                            Error::unavailable(&st.t.repo.registry, "body kept breaking")
                        });
                        return Some((Err(e), st));
                    }
                    st.fruitless += 1;
                    tracing::debug!(what = st.t.what, pos = st.pos, "reopening body with Range");
                    let end = (st.end > 0).then(|| st.end - 1);
                    match open(&st.t, st.pos, end, None).await {
                        Ok(c) => c,
                        Err(e) if e.is_transient() => {
                            st.last = Some(e);
                            continue;
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
            };
            match cur.next().await {
                Some(Ok(b)) => {
                    if !b.is_empty() {
                        st.fruitless = 0;
                    }
                    st.pos += b.len() as u64;
                    st.cur = Some(cur);
                    return Some((Ok(b), st));
                }
                Some(Err(e)) if e.is_transient() && st.pos < st.end => {
                    tracing::debug!(what = st.t.what, pos = st.pos, error = %e, "body broke");
                    st.last = Some(e);
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None if st.pos < st.end => {
                    st.last = Some(Error::unavailable(
                        &st.t.repo.registry,
                        format!("{}: body ended at byte {} of {}", st.t.what, st.pos, st.end),
                    ));
                }
                None => return None,
            }
        }
    }))
}
