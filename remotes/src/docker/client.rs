//! Sending one registry request: endpoint choice, auth, retries, redirects, HTTP fallback.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dist_content::{Elided, elide};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE,
};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::Mutex;

use super::ResolverOptions;
use super::range::range_header;
use super::watch::Watch;
use crate::auth::Authorizer;
use crate::hosts::{Capabilities, RegistryHost, Scheme, TlsOptions};
use crate::{Error, Result};

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 10;

/// State shared by everything a resolver creates.
pub(crate) struct Shared {
    pub(crate) opts: ResolverOptions,
    pub(crate) auth: Authorizer,
    clients: Mutex<HashMap<TlsOptions, reqwest::Client>>,
}

impl Shared {
    pub(crate) fn new(opts: ResolverOptions, auth: Authorizer) -> Self {
        Shared {
            opts,
            auth,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// One HTTP client per TLS configuration, so connections are pooled across requests.
    ///
    /// A configuration's CA files are read once per resolver, with `tokio::fs`, the first
    /// time a repository needs it; the async lock only orders first uses.
    async fn client(&self, tls: &TlsOptions, host: &str) -> Result<reqwest::Client> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(tls) {
            return Ok(c.clone());
        }
        // Token requests go through this client too, outside our own timeouts: reqwest's
        // read timeout bounds their wait for headers and each read of their body.
        let opts = &self.opts;
        crypto_provider(host)?;
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.header_timeout.max(opts.stall_timeout))
            .user_agent(opts.user_agent.clone());
        for path in &tls.ca_files {
            let pem = tokio::fs::read(path).await.map_err(|e| Error::Io {
                context: format!("CA file {} for {host}", Elided(&path.display().to_string())),
                source: e,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::config(
                    elide(&path.display().to_string()),
                    e.to_string(),
                    Some(e.into()),
                )
            })?;
            b = b.tls_certs_merge(certs);
        }
        if tls.skip_verify {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let client = b
            .build()
            .map_err(|e| Error::protocol_from(host, format!("building HTTP client: {e}"), e))?;
        clients.insert(tls.clone(), client.clone());
        Ok(client)
    }
}

/// Makes sure rustls has a crypto provider before reqwest builds a client (reqwest panics
/// without one). A provider the application installed process-wide always wins; otherwise
/// the crate feature chooses: `aws-lc-rs` is reqwest's own default, `ring` is installed
/// here, and with neither the caller gets an error instead of a panic.
fn crypto_provider(host: &str) -> Result<()> {
    if cfg!(feature = "aws-lc-rs") || rustls::crypto::CryptoProvider::get_default().is_some() {
        return Ok(());
    }
    #[cfg(feature = "ring")]
    {
        // Losing a race with another installer is fine: some provider is now installed.
        let _ = host;
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(())
    }
    #[cfg(not(feature = "ring"))]
    Err(Error::protocol(
        host,
        "no TLS crypto provider: enable dist-remotes' `aws-lc-rs` or `ring` feature, \
         or install a rustls CryptoProvider",
    ))
}

/// One endpoint of a repository's registry, with its client.
pub(crate) struct Endpoint {
    pub(crate) host: RegistryHost,
    client: reqwest::Client,
    /// Set once HTTPS failed to connect to a loopback host that allows plain HTTP.
    use_http: AtomicBool,
}

impl Endpoint {
    fn scheme(&self) -> &'static str {
        if self.host.scheme == Scheme::Http || self.use_http.load(Ordering::Relaxed) {
            "http"
        } else {
            "https"
        }
    }
}

/// What to ask of the registry.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    /// Below the repository: `manifests/<ref>` or `blobs/<digest>`.
    pub(crate) path: String,
    pub(crate) accept: Option<String>,
    /// `Range: bytes=<start>-[<end>]` (inclusive end) when set.
    pub(crate) range: Option<(u64, Option<u64>)>,
    /// The stall budget and observer of the descriptor being fetched, when there is one.
    pub(crate) watch: Option<Watch>,
    /// An absolute URL (an upload `Location`) used instead of `path` below the repository.
    pub(crate) url: Option<String>,
    /// What is sent, with its `Content-Type`, for uploads.
    pub(crate) body: Option<Payload>,
    /// Ask for `push,pull` scope instead of `pull`.
    pub(crate) push: bool,
    /// A repository of the same registry to ask `pull` scope on as well (a mount source).
    pub(crate) mount_from: Option<String>,
    /// `Content-Range: <start>-<end>` (inclusive end) on a chunk of a chunked upload.
    pub(crate) content_range: Option<(u64, u64)>,
    /// A token scope other than the repository's `pull` or `pull,push` (`registry:catalog:*`
    /// for the catalog, `repository:<name>:delete` for deletes).
    pub(crate) scope: Option<String>,
    /// `path` is below the API root (`/v2/_catalog`), not below the repository.
    pub(crate) root: bool,
}

/// A request body: bytes can be sent again on a retry; a stream is sent at most once.
#[derive(Clone)]
pub(crate) enum Payload {
    /// Exact bytes (a manifest), with their media type.
    Bytes(bytes::Bytes, String),
    /// A blob streamed from a provider, with its length; taken by the first attempt. The
    /// stream marks its progress, which bounds the wait instead of the header timeout.
    Once(
        Arc<std::sync::Mutex<Option<reqwest::Body>>>,
        u64,
        Arc<UploadProgress>,
    ),
}

/// When an upload's body last gave a chunk to the connection, and whether it is done.
///
/// A registry answers an upload only after reading all of it, which may take longer than
/// the header timeout: the wait is bounded by the stall timeout while the body is sent, and
/// by the header timeout once it is all sent.
#[derive(Debug)]
pub(crate) struct UploadProgress {
    state: std::sync::Mutex<(tokio::time::Instant, bool)>,
}

impl UploadProgress {
    pub(crate) fn new() -> Self {
        UploadProgress {
            state: std::sync::Mutex::new((tokio::time::Instant::now(), false)),
        }
    }

    /// Records that a chunk was handed over (`done` after the last one).
    pub(crate) fn advanced(&self, done: bool) {
        if let Ok(mut s) = self.state.lock() {
            *s = (tokio::time::Instant::now(), done);
        }
    }

    fn get(&self) -> (tokio::time::Instant, bool) {
        self.state
            .lock()
            .map(|s| *s)
            .unwrap_or_else(|_| (tokio::time::Instant::now(), false))
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Bytes(b, mt) => write!(f, "Bytes({} bytes, {mt})", b.len()),
            Payload::Once(_, n, _) => write!(f, "Once({n} bytes)"),
        }
    }
}

impl Request {
    pub(crate) fn new(method: Method, path: String) -> Self {
        Request {
            method,
            path,
            accept: None,
            range: None,
            watch: None,
            url: None,
            body: None,
            push: false,
            mount_from: None,
            content_range: None,
            scope: None,
            root: false,
        }
    }
}

/// A repository on one registry host, with the endpoints that serve it.
pub(crate) struct Repository {
    /// The registry host as written in references (`docker.io`).
    pub(crate) registry: String,
    /// The repository path (`library/redis`).
    pub(crate) name: String,
    endpoints: Vec<Endpoint>,
    pub(crate) shared: Arc<Shared>,
}

impl Repository {
    pub(crate) async fn new(shared: Arc<Shared>, registry: &str, name: String) -> Result<Self> {
        let mut endpoints = Vec::new();
        for host in shared.opts.hosts.hosts(registry)? {
            let client = shared.client(&host.tls, &host.host).await?;
            endpoints.push(Endpoint {
                host,
                client,
                use_http: AtomicBool::new(false),
            });
        }
        Ok(Repository {
            registry: registry.to_string(),
            name,
            endpoints,
            shared,
        })
    }

    fn scope(&self, req: &Request) -> String {
        let actions = if req.push { "pull,push" } else { "pull" };
        match &req.mount_from {
            Some(from) => format!("repository:{}:{actions} repository:{from}:pull", self.name),
            None => format!("repository:{}:{actions}", self.name),
        }
    }

    /// Sends `req` to the first endpoint with `cap` that answers; falls through mirrors
    /// that fail or lack the object when fallback is on. Returns the endpoint's host with
    /// the response (which may be any non-retryable status but `401`).
    pub(crate) async fn send(
        &self,
        cap: fn(&Capabilities) -> bool,
        req: &Request,
    ) -> Result<(String, Response)> {
        let eps: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| cap(&e.host.capabilities))
            .collect();
        let fallback = self.shared.opts.mirror_fallback;
        let mut last_err = None;
        for (i, ep) in eps.iter().enumerate() {
            let last = i + 1 == eps.len();
            let attempts = if fallback && !last {
                1
            } else {
                self.shared.opts.retry.max_attempts
            };
            match self.send_one(ep, req, attempts).await {
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND && fallback && !last => {
                    tracing::debug!(host = ep.host.host, path = req.path, "not on mirror");
                }
                Ok(resp) => return Ok((ep.host.host.clone(), resp)),
                Err(e) if e.kind() == crate::ErrorKind::Unavailable && fallback && !last => {
                    tracing::warn!(host = ep.host.host, error = %e, "mirror failed, trying next");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            Error::protocol(
                &self.registry,
                format!("no endpoint configured for {}", req.path),
            )
        }))
    }

    /// Sends `req` to one endpoint with auth and up to `attempts` tries.
    ///
    /// An attempt whose headers do not arrive within the header timeout counts against the
    /// request's stall budget (its descriptor's when it has one, else a fresh one); once
    /// that is spent, the request fails without further tries. Other failures are retried
    /// until `max_elapsed` has passed without a byte of the descriptor.
    async fn send_one(&self, ep: &Endpoint, req: &Request, attempts: u32) -> Result<Response> {
        let policy = &self.shared.opts.retry;
        let scope = req.scope.clone().unwrap_or_else(|| self.scope(req));
        let host = ep.host.host.as_str();
        // A streamed body cannot be sent twice.
        let attempts = if matches!(req.body, Some(Payload::Once(..))) {
            1
        } else {
            attempts
        };
        let start = Instant::now();
        let watch = req
            .watch
            .clone()
            .unwrap_or_else(|| Watch::new(self.shared.opts.max_stalls, None));
        let offset = req.range.map_or(0, |(s, _)| s);
        let mut attempt = 0u32;
        let mut authorized = false;
        // The transport error behind this attempt's failure, for the final error's source.
        let mut last_error: Option<reqwest::Error>;
        loop {
            attempt = attempt.saturating_add(1);
            last_error = None;
            let url = match &req.url {
                Some(u) => u.clone(),
                None if req.root => {
                    format!("{}://{}{}/{}", ep.scheme(), host, ep.host.path, req.path)
                }
                None => format!(
                    "{}://{}{}/{}/{}",
                    ep.scheme(),
                    host,
                    ep.host.path,
                    self.name,
                    req.path
                ),
            };
            let failure = match self.send_following(ep, &url, req, &scope).await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    if authorized {
                        let why = if self.shared.auth.has_credential(host) {
                            "credentials rejected"
                        } else {
                            "anonymous access denied (no credentials for this host)"
                        };
                        return Err(Error::Unauthorized {
                            host: host.to_string(),
                            reason: format!("{} {}: {why}", req.method, Elided(&url)),
                        });
                    }
                    authorized = true;
                    attempt = attempt.saturating_sub(1);
                    let auth = &self.shared.auth;
                    auth.on_unauthorized(&ep.client, host, &scope, resp.headers())
                        .await?;
                    continue;
                }
                Ok(resp) => {
                    let status = resp.status();
                    match policy.delay_for_status(status, resp.headers(), attempt) {
                        None => return Ok(resp),
                        Some(delay) => (format!("{} {url}: {status}", req.method), delay),
                    }
                }
                Err(Failure::BodySpent) => {
                    // A streamed body went with an attempt that must be repeated (a `401`
                    // that refreshed the token, a redirect): transient, so the caller
                    // starts the upload again with a fresh body.
                    return Err(Error::unavailable(
                        host,
                        format!(
                            "{} {}: the streamed body was spent on an earlier attempt",
                            req.method,
                            Elided(&url)
                        ),
                    ));
                }
                Err(Failure::TooManyRedirects) => {
                    return Err(Error::protocol(
                        host,
                        format!("{}: too many redirects", Elided(&url)),
                    ));
                }
                Err(Failure::NoResponse(d)) => {
                    let reason = format!("{} {url}: no response headers within {d:?}", req.method);
                    if !watch.stalled(host, offset, d) {
                        return Err(gave_up(host, &watch, &reason));
                    }
                    (reason, policy.backoff(attempt))
                }
                Err(Failure::Http(e)) => {
                    // Docker falls back when the server does not speak TLS at all, not
                    // when it presents a certificate we refuse.
                    if e.is_connect()
                        && !refused_certificate(&e)
                        && ep.host.plain_http_fallback
                        && !ep.use_http.swap(true, Ordering::Relaxed)
                    {
                        tracing::info!(host, "HTTPS failed on loopback host, using plain HTTP");
                        attempt = attempt.saturating_sub(1);
                        continue;
                    }
                    if e.is_builder() {
                        return Err(Error::protocol_from(
                            host,
                            elide(&e.to_string()),
                            e.without_url(),
                        ));
                    }
                    let reason = format!("{} {url}: {}", req.method, error_chain(&e));
                    // Kept without its URL (a redirect may have chosen it): the reason has
                    // it, elided.
                    last_error = Some(e.without_url());
                    (reason, policy.backoff(attempt))
                }
            };
            let (reason, delay) = failure;
            // Time without a byte of the descriptor, across reopenings (for a request
            // without one, since this request began).
            let idle = watch.since_progress().max(start.elapsed());
            if !policy.may_retry(attempt, attempts, idle, delay) {
                return Err(match last_error.take() {
                    Some(e) => Error::unavailable_from(host, elide(&reason), e),
                    None => Error::unavailable(host, elide(&reason)),
                });
            }
            tracing::debug!(host, attempt, ?delay, reason, "retrying");
            watch.retrying(host, offset, delay, &reason);
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt, following redirects by hand so `Authorization` never leaves the
    /// endpoint's origin.
    async fn send_following(
        &self,
        ep: &Endpoint,
        url: &str,
        req: &Request,
        scope: &str,
    ) -> std::result::Result<Response, Failure> {
        // One header deadline for the whole chain of redirects.
        let limit = self.shared.opts.header_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        let mut url = url.to_string();
        // `Authorization` goes to the endpoint's own origin only: an upload `Location` or a
        // redirect elsewhere (another host or scheme) gets none.
        let origin = origin_of(&format!("{}://{}", ep.scheme(), ep.host.host));
        for _ in 0..=MAX_REDIRECTS {
            let mut rb = ep.client.request(req.method.clone(), &url);
            if origin_of(&url) == origin
                && let Some(h) = self.shared.auth.header(&ep.host.host, scope)
            {
                rb = rb.header(AUTHORIZATION, h);
            }
            if let Some(a) = &req.accept {
                rb = rb.header(ACCEPT, a.as_str());
            }
            if let Some((start, end)) = req.range {
                rb = rb.header(RANGE, range_header(start, end));
            }
            if let Some((start, end)) = req.content_range {
                rb = rb.header(CONTENT_RANGE, format!("{start}-{end}"));
            }
            match &req.body {
                Some(Payload::Bytes(b, mt)) => {
                    rb = rb.header(CONTENT_TYPE, mt.as_str()).body(b.clone());
                }
                Some(Payload::Once(cell, len, _)) => {
                    let body = cell.lock().ok().and_then(|mut b| b.take());
                    let Some(body) = body else {
                        return Err(Failure::BodySpent);
                    };
                    rb = rb
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, *len)
                        .body(body);
                }
                None if req.method == Method::PUT || req.method == Method::POST => {
                    rb = rb.header(CONTENT_LENGTH, 0);
                }
                None => {}
            }
            let sent = match &req.body {
                Some(Payload::Once(_, _, progress)) => {
                    let stall = self.shared.opts.stall_timeout;
                    upload_bounded(rb.send(), progress, limit, stall).await
                }
                _ => tokio::time::timeout_at(deadline, rb.send())
                    .await
                    .map_err(|_| limit),
            };
            let resp = match sent {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if e.is_timeout() => return Err(Failure::NoResponse(limit)),
                Ok(Err(e)) => return Err(Failure::Http(e)),
                Err(d) => return Err(Failure::NoResponse(d)),
            };
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(next) = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| resp.url().join(l).ok())
            else {
                return Ok(resp);
            };
            tracing::debug!(from = %resp.url(), to = %Elided(next.as_str()), "following redirect");
            url = next.to_string();
        }
        Err(Failure::TooManyRedirects)
    }
}

/// Waits for an upload's response: fails with the bound that ran out when the body gave no
/// chunk for `stall`, or, once it is all sent, no response came within `limit`.
async fn upload_bounded<F: std::future::Future>(
    send: F,
    progress: &UploadProgress,
    limit: Duration,
    stall: Duration,
) -> std::result::Result<F::Output, Duration> {
    let tick = limit.min(stall) / 4;
    let tick = tick.max(Duration::from_millis(10));
    tokio::pin!(send);
    loop {
        tokio::select! {
            out = &mut send => return Ok(out),
            () = tokio::time::sleep(tick) => {
                let (last, done) = progress.get();
                let bound = if done { limit } else { stall };
                if last.elapsed() > bound {
                    return Err(bound);
                }
            }
        }
    }
}

/// Why one attempt produced no response.
enum Failure {
    Http(reqwest::Error),
    NoResponse(Duration),
    TooManyRedirects,
    /// A streamed body was asked for a second time (a redirect after sending it).
    BodySpent,
}

/// `scheme://host:port`, the unit `Authorization` is confined to.
fn origin_of(url: &str) -> Option<(String, String, Option<u16>)> {
    let u = url::Url::parse(url).ok()?;
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_string(),
        u.port_or_known_default(),
    ))
}

/// A reqwest error with its causes, which carry the useful part (refused, reset, TLS).
/// Callers elide the result: a reqwest error quotes the URL, which a redirect may set.
/// Whether rustls refused the server's certificate somewhere in `e`'s causes (looked up by
/// type: an `io::Error` hides its inner error from `source()`, so it is opened by hand, as
/// often as it nests).
fn refused_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let refused = |r: &rustls::Error| {
        matches!(
            r,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::InvalidCertRevocationList(_)
        )
    };
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return refused(r);
        }
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The error once `watch`'s stall budget is spent: one line naming the host (and, in
/// `last`, the URL with the digest).
pub(crate) fn gave_up(host: &str, watch: &Watch, last: &str) -> Error {
    let stalls = watch.stalls();
    Error::unavailable(
        host,
        format!(
            "{GAVE_UP} {stalls} stalled attempts; last: {}",
            Elided(last)
        ),
    )
}

/// How [`gave_up`] reasons start.
const GAVE_UP: &str = "gave up after";

/// Whether `e` came from [`gave_up`] (so it is final, not wrapped again).
pub(crate) fn is_gave_up(e: &Error) -> bool {
    matches!(e, Error::Unavailable { reason, .. } if reason.starts_with(GAVE_UP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_that_keeps_progressing_outlives_the_header_timeout() {
        let progress = Arc::new(UploadProgress::new());
        let p = progress.clone();
        // Sends for three header timeouts, handing over a chunk every 10 ms.
        let send = async move {
            for _ in 0..150 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                p.advanced(false);
            }
            p.advanced(true);
            "answered"
        };
        let limit = Duration::from_millis(500);
        let out = upload_bounded(send, &progress, limit, limit).await;
        assert_eq!(out, Ok("answered"));
    }

    #[tokio::test]
    async fn an_upload_without_progress_fails_after_the_stall_timeout() {
        let progress = UploadProgress::new();
        let stall = Duration::from_millis(50);
        let out = upload_bounded(std::future::pending::<()>(), &progress, stall * 100, stall);
        assert_eq!(out.await, Err(stall));
    }

    #[tokio::test]
    async fn a_sent_upload_without_an_answer_fails_after_the_header_timeout() {
        let progress = UploadProgress::new();
        progress.advanced(true);
        let limit = Duration::from_millis(50);
        let out = upload_bounded(std::future::pending::<()>(), &progress, limit, limit * 100);
        assert_eq!(out.await, Err(limit));
    }
}
