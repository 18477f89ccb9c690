//! The Docker registry (distribution API v2) implementation of [`Resolver`] and [`Fetcher`].

mod catalog;
mod client;
mod errcode;
mod fetch;
mod mount;
mod parallel;
mod push;
mod range;
mod referrers;
mod resolve;
mod upload;
mod upload_state;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oci_spec::image::Descriptor;

use crate::auth::{Anonymous, Authorizer, Credentials, DockerConfig};
use crate::hosts::{DOCKER_HUB, HostsConfig};
use crate::retry::RetryPolicy;
use crate::{Error, Fetcher, Pusher, Resolver, Result};
pub use catalog::{ListOptions, RegistryRepository};
pub use fetch::DockerFetcher;
pub use push::DockerPusher;
pub use referrers::{DockerReferrers, FallbackUpdate};

use client::{Repository, Shared};

/// The largest manifest or index accepted by default: 4 MiB, as containerd. The same number
/// as [`dist_images::MAX_MANIFEST_SIZE`], which the readers of stored manifests use.
pub const DEFAULT_MAX_MANIFEST_SIZE: u64 = dist_images::MAX_MANIFEST_SIZE;

/// The default response-header and body-stall timeouts: 30 s each.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default number of stalled attempts a descriptor may have: 3, so that a registry that
/// keeps stalling fails a blob after about 90 s (three 30 s stalls).
pub const DEFAULT_MAX_STALLS: u32 = 3;

/// How a [`DockerResolver`] talks to registries. Start from [`Default`] and adjust.
#[derive(Clone)]
#[non_exhaustive]
pub struct ResolverOptions {
    /// Endpoints per registry host (mirrors, plain HTTP, TLS).
    pub hosts: HostsConfig,
    /// Where credentials come from. The default is [`DockerConfig::load`] (Docker's
    /// `config.json`), or anonymous when that file cannot be read.
    pub credentials: Arc<dyn Credentials>,
    /// Retries of one request against one endpoint.
    pub retry: RetryPolicy,
    /// When a mirror fails (connection error, 5xx, or 404), try the next endpoint. Mirrors
    /// get a single attempt each when this is on; the last endpoint gets the full policy.
    pub mirror_fallback: bool,
    /// Manifests and indexes above this size are refused without being read.
    pub max_manifest_size: u64,
    /// Bound on establishing a connection (30 s).
    pub connect_timeout: Duration,
    /// Bound on waiting for a response's headers, redirects included (30 s). A server
    /// that accepts and never answers fails the attempt after this long.
    pub header_timeout: Duration,
    /// A body that delivers no byte for this long is abandoned (30 s). Applies to every
    /// body: manifests, blobs and token responses.
    pub stall_timeout: Duration,
    /// How many stalled attempts (header or stall timeout) one descriptor may have before
    /// its fetch fails (3), counting attempts that delivered bytes before stalling. With
    /// every attempt stalling, a fetch fails after at most
    /// `max_stalls * (header_timeout + stall_timeout)` plus retry waits.
    pub max_stalls: u32,
    /// How many times in a row a broken body is reopened without receiving a byte.
    pub max_resumes_without_progress: u32,
    /// Fetch blobs at least this large as parallel `Range` requests.
    pub parallel: Option<ParallelFetch>,
    /// The `User-Agent` sent with every request.
    pub user_agent: String,
    /// How a push uploads blobs: monolithic unless a chunk size is set.
    pub upload: UploadOptions,
}

/// How a push uploads blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadOptions {
    /// Upload in `PATCH` chunks of this many bytes (raised to a registry's
    /// `OCI-Chunk-Min-Length`) instead of one monolithic `PUT`; `None` is monolithic.
    pub chunk_size: Option<u64>,
    /// Where the state of interrupted chunked uploads is kept (upload URL and offset), so
    /// that the same push run again resumes from the registry's offset.
    pub state_dir: Option<std::path::PathBuf>,
}

/// Settings for fetching one big blob as several concurrent `Range` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParallelFetch {
    /// Blobs smaller than this are fetched with one request.
    pub min_size: u64,
    /// The size of each range.
    pub chunk_size: u64,
    /// How many ranges are in flight at once.
    pub concurrency: usize,
}

impl ParallelFetch {
    /// `concurrency` ranges of `chunk_size` bytes for blobs of at least `min_size`.
    pub fn new(min_size: u64, chunk_size: u64, concurrency: usize) -> Self {
        ParallelFetch {
            min_size,
            chunk_size: chunk_size.max(1),
            concurrency: concurrency.max(1),
        }
    }
}

impl Default for ResolverOptions {
    fn default() -> Self {
        ResolverOptions {
            hosts: HostsConfig::new(),
            credentials: default_credentials(),
            retry: RetryPolicy::default(),
            mirror_fallback: true,
            max_manifest_size: DEFAULT_MAX_MANIFEST_SIZE,
            connect_timeout: Duration::from_secs(30),
            header_timeout: DEFAULT_REQUEST_TIMEOUT,
            stall_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_stalls: DEFAULT_MAX_STALLS,
            max_resumes_without_progress: 5,
            parallel: None,
            user_agent: concat!("dist-rs/", env!("CARGO_PKG_VERSION")).to_string(),
            upload: UploadOptions::default(),
        }
    }
}

/// Docker's `config.json`, read the first time a registry asks for credentials.
///
/// `ResolverOptions::default()` is often called from async code; reading the file there
/// would block a runtime worker, so the read waits for the first `401` and goes through
/// `DockerConfig::load_async`. An unreadable file means anonymous, with a warning.
fn default_credentials() -> Arc<dyn Credentials> {
    Arc::new(LazyDockerConfig::default())
}

#[derive(Default)]
struct LazyDockerConfig(tokio::sync::OnceCell<Arc<dyn Credentials>>);

impl std::fmt::Debug for LazyDockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyDockerConfig")
            .field("loaded", &self.0.initialized())
            .finish()
    }
}

#[async_trait::async_trait]
impl Credentials for LazyDockerConfig {
    async fn credential(&self, host: &str) -> Option<crate::Credential> {
        let creds = self
            .0
            .get_or_init(|| async {
                match DockerConfig::load_async().await {
                    Ok(cfg) => Arc::new(cfg) as Arc<dyn Credentials>,
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring unreadable Docker config; going anonymous");
                        Arc::new(Anonymous)
                    }
                }
            })
            .await;
        creds.credential(host).await
    }
}

impl ResolverOptions {
    /// Uploads pushed blobs in chunks of `chunk_size` bytes, resumable across failures.
    pub fn with_chunked_upload(mut self, chunk_size: u64) -> Self {
        self.upload.chunk_size = Some(chunk_size.max(1));
        self
    }

    /// Keeps the state of interrupted chunked uploads under `dir` (for example
    /// `<root>/uploads`), so a push run again resumes them.
    pub fn with_upload_state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.upload.state_dir = Some(dir.into());
        self
    }

    /// Sets the hosts configuration.
    pub fn with_hosts(mut self, hosts: HostsConfig) -> Self {
        self.hosts = hosts;
        self
    }

    /// Sets the credentials provider.
    pub fn with_credentials(mut self, creds: Arc<dyn Credentials>) -> Self {
        self.credentials = creds;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Turns falling through to the next endpoint on failure on or off.
    pub fn with_mirror_fallback(mut self, on: bool) -> Self {
        self.mirror_fallback = on;
        self
    }

    /// Sets the manifest size bound.
    pub fn with_max_manifest_size(mut self, bytes: u64) -> Self {
        self.max_manifest_size = bytes;
        self
    }

    /// Takes the manifest size bound from `limits`: pass the [`dist_images::Limits`] the
    /// children handler and [`Image`](dist_images::Image) read within, so that every
    /// manifest fetched is also readable from the store, and no larger one is fetched.
    pub fn with_limits(self, limits: &dist_images::Limits) -> Self {
        self.with_max_manifest_size(limits.max_manifest_size)
    }

    /// Sets the connect and stalled-body timeouts.
    pub fn with_timeouts(mut self, connect: Duration, stall: Duration) -> Self {
        self.connect_timeout = connect;
        self.stall_timeout = stall;
        self
    }

    /// Sets the per-request limits at once: the response-header timeout and the body
    /// stall timeout both become `limit` (what `dist --timeout` sets).
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        self.header_timeout = limit;
        self.stall_timeout = limit;
        self
    }

    /// Sets the bound on waiting for response headers.
    pub fn with_header_timeout(mut self, limit: Duration) -> Self {
        self.header_timeout = limit;
        self
    }

    /// Sets the bound on a body delivering no byte.
    pub fn with_stall_timeout(mut self, limit: Duration) -> Self {
        self.stall_timeout = limit;
        self
    }

    /// Sets how many stalled attempts one descriptor may have (at least 1).
    pub fn with_max_stalls(mut self, n: u32) -> Self {
        self.max_stalls = n.max(1);
        self
    }

    /// Sets how often a broken body is reopened without progress.
    pub fn with_max_resumes(mut self, n: u32) -> Self {
        self.max_resumes_without_progress = n;
        self
    }

    /// Enables parallel ranged fetches of big blobs.
    pub fn with_parallel(mut self, parallel: Option<ParallelFetch>) -> Self {
        self.parallel = parallel;
        self
    }
}

impl std::fmt::Debug for ResolverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolverOptions")
            .field("hosts", &self.hosts)
            .field("retry", &self.retry)
            .field("mirror_fallback", &self.mirror_fallback)
            .field("max_manifest_size", &self.max_manifest_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("header_timeout", &self.header_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("max_stalls", &self.max_stalls)
            .field(
                "max_resumes_without_progress",
                &self.max_resumes_without_progress,
            )
            .field("parallel", &self.parallel)
            .finish_non_exhaustive()
    }
}

/// Resolves and fetches from Docker/OCI registries.
///
/// Cheap to clone; clones share connection pools and cached tokens.
#[derive(Clone)]
pub struct DockerResolver {
    shared: Arc<Shared>,
}

impl DockerResolver {
    /// A resolver with `options`.
    pub fn new(options: ResolverOptions) -> Self {
        let auth = Authorizer::new(options.credentials.clone(), options.hosts.clone());
        DockerResolver {
            shared: Arc::new(Shared::new(options, auth)),
        }
    }

    async fn repository(&self, reference: &str) -> Result<(Repository, dist_reference::Spec)> {
        let spec =
            dist_reference::Spec::parse(reference).map_err(Error::from_reference(reference))?;
        let host = spec.hostname().to_string();
        let mut name = spec.repository().to_string();
        if name.is_empty() {
            return Err(Error::invalid_reference(reference, "no repository", None));
        }
        if host == DOCKER_HUB && !name.contains('/') {
            name = format!("library/{name}");
        }
        let repo = Repository::new(self.shared.clone(), &host, name).await?;
        Ok((repo, spec))
    }
}

impl Default for DockerResolver {
    fn default() -> Self {
        DockerResolver::new(ResolverOptions::default())
    }
}

impl std::fmt::Debug for DockerResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerResolver")
            .field("options", &self.shared.opts)
            .finish()
    }
}

#[async_trait]
impl Resolver for DockerResolver {
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)> {
        let (repo, spec) = self.repository(reference).await?;
        let desc = resolve::resolve(&repo, reference, spec.tag(), spec.digest()).await?;
        Ok((reference.to_string(), desc))
    }

    async fn fetcher(&self, name: &str) -> Result<Box<dyn Fetcher>> {
        let (repo, _) = self.repository(name).await?;
        Ok(Box::new(DockerFetcher::new(Arc::new(repo))))
    }

    async fn pusher(&self, name: &str) -> Result<Box<dyn Pusher>> {
        let (repo, spec) = self.repository(name).await?;
        let tag = spec.tag().map(str::to_string);
        Ok(Box::new(DockerPusher::new(Arc::new(repo), tag)))
    }
}
