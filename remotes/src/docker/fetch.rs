//! Fetching manifests and blobs: ranged requests, resume on broken bodies, verification.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dist_content::Elided;
use dist_images::media_types::is_manifest_or_index;
use futures::{Stream, StreamExt};
use oci_spec::image::Descriptor;
use reqwest::header::CONTENT_RANGE;
use reqwest::{Method, StatusCode};

use super::client::{Repository, Request, error_chain, gave_up, is_gave_up};
use super::range::check_partial;
use super::resolve::{content_length, header_digest, manifest_accept};
use super::watch::Watch;
use crate::verify::checked;
use crate::{ByteStream, Error, FetchObserver, FetchOptions, Fetcher, Result};

/// Descriptor sizes above this are refused before any request: the OCI image spec makes
/// `size` an int64, and nothing real comes near it.
pub(crate) const MAX_DESCRIPTOR_SIZE: u64 = i64::MAX as u64;

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
    /// The content's size, from the descriptor.
    pub(super) size: u64,
    /// The stall budget and observer shared by every attempt for this descriptor.
    pub(super) watch: Watch,
}

impl DockerFetcher {
    pub(crate) fn new(repo: Arc<Repository>) -> Self {
        DockerFetcher { repo }
    }
}

#[async_trait]
impl Fetcher for DockerFetcher {
    async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> Result<ByteStream> {
        self.fetch_watched(desc, offset, FetchOptions::default())
            .await
    }

    async fn fetch_at_observed(
        &self,
        desc: &Descriptor,
        offset: u64,
        observer: Arc<dyn FetchObserver>,
    ) -> Result<ByteStream> {
        let options = FetchOptions::default().observer(observer);
        self.fetch_watched(desc, offset, options).await
    }

    async fn fetch_at_with(
        &self,
        desc: &Descriptor,
        offset: u64,
        options: FetchOptions,
    ) -> Result<ByteStream> {
        self.fetch_watched(desc, offset, options).await
    }
}

impl DockerFetcher {
    async fn fetch_watched(
        &self,
        desc: &Descriptor,
        offset: u64,
        options: FetchOptions,
    ) -> Result<ByteStream> {
        let FetchOptions {
            observer,
            caller_checks_digest,
        } = options;
        let hash = !caller_checks_digest;
        let size = desc.size();
        let digest = desc.digest();
        let what = format!("{}/{}@{digest}", self.repo.registry, self.repo.name);
        if size > MAX_DESCRIPTOR_SIZE {
            return Err(Error::mismatch(
                what,
                format!("absurd descriptor size {size} (over {MAX_DESCRIPTOR_SIZE})"),
            ));
        }
        if offset > size {
            return Err(Error::mismatch(
                what,
                format!("offset {offset} is past the size {size}"),
            ));
        }
        let manifest = is_manifest_or_index(desc.media_type());
        let opts = &self.repo.shared.opts;
        let max = opts.max_manifest_size;
        if manifest && size > max {
            return Err(Error::TooLarge {
                what,
                size,
                limit: max,
            });
        }
        if offset == size {
            return checked(
                Box::pin(futures::stream::empty()),
                digest,
                size,
                offset,
                hash,
            );
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
            size,
            watch: Watch::new(opts.max_stalls, observer),
        };
        let body = match opts.parallel {
            Some(p) if !manifest && size - offset >= p.min_size => {
                super::parallel::fetch(target, offset, size, p)
            }
            _ => {
                let first = open(&target, offset, None, Some(digest)).await?;
                resuming(target, first, offset, size)
            }
        };
        checked(body, digest, size, offset, hash)
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
    req.watch = Some(t.watch.clone());
    if start > 0 || end.is_some() {
        req.range = Some((start, end));
    }
    let (host, resp) = t.repo.send(|c| c.pull, &req).await?;
    let status = resp.status();
    // How many bytes, from `start`, this request may deliver.
    let wanted = match end {
        Some(e) => e.checked_sub(start).and_then(|n| n.checked_add(1)),
        None => t.size.checked_sub(start),
    }
    .ok_or_else(|| Error::protocol(&host, format!("{}: empty range from {start}", t.what)))?;
    let skip = match status {
        StatusCode::OK => {
            // The whole content: its length, when announced, must not exceed the size.
            if let Some(len) = content_length(resp.headers())
                && len > t.size
            {
                return Err(Error::mismatch(
                    &t.what,
                    format!(
                        "registry announces {len} bytes, more than the size {}",
                        t.size
                    ),
                ));
            }
            start
        }
        StatusCode::PARTIAL_CONTENT => {
            let header = resp
                .headers()
                .get(CONTENT_RANGE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            check_partial(header.as_deref(), start, end, t.size)
                .map_err(|why| Error::protocol(&host, format!("{}: {why}", t.what)))?;
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
    // Only a header of the descriptor's algorithm can be compared (registries name content
    // by their canonical algorithm, whatever digest it was asked by).
    if t.manifest
        && let (Some(expected), Some(served)) = (digest, header_digest(resp.headers(), &host)?)
        && expected.algorithm() == served.algorithm()
        && *expected != served
    {
        return Err(Error::mismatch(
            &t.what,
            format!("registry says Docker-Content-Digest {served}"),
        ));
    }
    let body = with_stall_timeout(resp.bytes_stream(), t, host, start.saturating_sub(skip));
    let body = skip_prefix(body, skip);
    // An endless or overlong body ends at what was asked for (`verified` then sees the
    // excess of a whole-content answer as an error).
    Ok(match end {
        Some(_) => take(body, wanted),
        None => body,
    })
}

/// Maps the body's errors and ends it with an `Unavailable` error when no chunk arrives
/// for the stall timeout. A stall counts against the descriptor's budget, which
/// [`resuming`] checks before another attempt. `pos` is the content offset
/// of the body's first byte, for events and messages.
fn with_stall_timeout(
    inner: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    t: &Target,
    host: String,
    pos: u64,
) -> ByteStream {
    struct State<S> {
        inner: std::pin::Pin<Box<S>>,
        pos: u64,
        host: String,
        what: String,
        watch: Watch,
        stall: Duration,
    }
    let state = State {
        inner: Box::pin(inner),
        pos,
        host,
        what: t.what.clone(),
        watch: t.watch.clone(),
        stall: t.repo.shared.opts.stall_timeout,
    };
    Box::pin(futures::stream::unfold(Some(state), |st| async move {
        let mut st = st?;
        let stalled = match tokio::time::timeout(st.stall, st.inner.next()).await {
            Ok(Some(Ok(b))) => {
                if !b.is_empty() {
                    st.watch.progressed();
                }
                st.pos = st.pos.saturating_add(b.len() as u64);
                return Some((Ok(b), Some(st)));
            }
            Ok(None) => return None,
            // reqwest's own read timeout (the client's) is a stall as well.
            Ok(Some(Err(e))) if !e.is_timeout() => {
                let reason = format!("{}: reading body: {}", st.what, error_chain(&e));
                let reason = Elided(&reason).to_string();
                let err = Error::unavailable_from(&st.host, reason, e.without_url());
                return Some((Err(err), None));
            }
            Ok(Some(Err(_))) | Err(_) => st.stall,
        };
        let reason = format!("{}: no data for {stalled:?} at byte {}", st.what, st.pos);
        // Counted here; `resuming` decides whether the budget allows another attempt.
        st.watch.stalled(&st.host, st.pos, stalled);
        let err = Error::unavailable(&st.host, Elided(&reason).to_string());
        Some((Err(err), None))
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
                        let cut = usize::try_from(left).unwrap_or(usize::MAX).min(b.len());
                        left = left.saturating_sub(cut as u64);
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
                    if let Ok(l) = usize::try_from(left)
                        && b.len() > l
                    {
                        b.truncate(l);
                    }
                    let l = left.saturating_sub(b.len() as u64);
                    Some((Ok::<Bytes, Error>(b), (inner, l)))
                }
                Err(e) => Some((Err(e), (inner, left))),
            }
        },
    ))
}

/// How many bytes one attempt must deliver to reset the count of fruitless reopenings.
const MIN_PROGRESS: u64 = 64 << 10;

/// Streams bytes `pos..end` starting from the already-open `first`; when the body breaks,
/// stalls or ends early, reopens it at the current position, giving up after the
/// configured number of reopenings in a row that each brought less than 64 KiB, once the retry policy's
/// `max_elapsed` has passed without a byte, or once the descriptor's stall budget is spent
/// (stalls count even when the attempt delivered bytes).
pub(super) fn resuming(t: Target, first: ByteStream, pos: u64, end: u64) -> ByteStream {
    struct State {
        t: Target,
        cur: Option<ByteStream>,
        pos: u64,
        end: u64,
        fruitless: u32,
        /// Bytes the current attempt delivered.
        got: u64,
        last: Option<Error>,
        done: bool,
    }
    let state = State {
        t,
        cur: Some(first),
        pos,
        end,
        fruitless: 0,
        got: 0,
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
                    if st.t.watch.exhausted() {
                        st.done = true;
                        let e = match st.last.take() {
                            Some(e) if is_gave_up(&e) => e,
                            last => {
                                let last = last.map_or_else(String::new, |e| reason_of(&e));
                                gave_up(&st.t.repo.registry, &st.t.watch, &last)
                            }
                        };
                        return Some((Err(e), st));
                    }
                    let idle = st.t.watch.since_progress();
                    if st.fruitless >= max || idle > st.t.repo.shared.opts.retry.max_elapsed {
                        st.done = true;
                        let e = st.last.take().unwrap_or_else(|| {
                            Error::unavailable(&st.t.repo.registry, "body kept breaking")
                        });
                        return Some((Err(e), st));
                    }
                    st.fruitless = st.fruitless.saturating_add(1);
                    st.got = 0;
                    tracing::debug!(what = st.t.what, pos = st.pos, "reopening body with Range");
                    if let Some(last) = &st.last {
                        let registry = &st.t.repo.registry;
                        let reason = reason_of(last);
                        st.t.watch
                            .retrying(registry, st.pos, Duration::ZERO, &reason);
                    }
                    let end = st.end.checked_sub(1);
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
                    // An attempt counts as progress once it brought a useful amount, so
                    // a server cutting every connection after a few bytes cannot keep the
                    // fetch crawling for ever.
                    st.got = st.got.saturating_add(b.len() as u64);
                    if st.got >= MIN_PROGRESS {
                        st.fruitless = 0;
                    }
                    st.pos = st.pos.saturating_add(b.len() as u64);
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

/// The part of an error that says what went wrong, without the host it already names.
fn reason_of(e: &Error) -> String {
    match e {
        Error::Unavailable { reason, .. } => reason.clone(),
        e => e.to_string(),
    }
}
