//! Shared helpers for the registry tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dist_remotes::{
    DockerResolver, Fetcher, HostsConfig, Resolver, ResolverOptions, RetryPolicy, StaticCredentials,
};
use dist_test_support::{AuthMode, FaultServer, PASSWORD, Registry, Reply, Request, USERNAME};
use futures::TryStreamExt;
use oci_spec::image::{Descriptor, MediaType};

use dist_images::media_types::OCI_MANIFEST;

/// Options for talking to a loopback test registry: plain HTTP, fast retries.
pub(crate) fn options(reg_host: &str, mode: AuthMode, password: &str) -> ResolverOptions {
    // Anonymous unless told otherwise: tests must not read the user's Docker config.
    let mut opts = ResolverOptions::default()
        .with_credentials(Arc::new(dist_remotes::Anonymous))
        .with_hosts(HostsConfig::new().with_plain_http(reg_host))
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_delays(Duration::from_millis(10), Duration::from_millis(100)),
        );
    if mode != AuthMode::None {
        opts = opts.with_credentials(Arc::new(
            StaticCredentials::new().with_basic(reg_host, USERNAME, password),
        ));
    }
    opts
}

/// A resolver with the right credentials for `reg`.
pub(crate) fn resolver(reg: &Registry) -> DockerResolver {
    DockerResolver::new(options_for(reg, PASSWORD))
}

/// Options for `reg` with `password`; a token issuer on plain HTTP is named as trusted.
pub(crate) fn options_for(reg: &Registry, password: &str) -> ResolverOptions {
    let mut opts = options(&reg.host(), reg.mode(), password);
    if let Some(t) = reg.token_issuer() {
        let realm = url::Url::parse(&t.realm()).unwrap();
        let host = format!("{}:{}", realm.host_str().unwrap(), realm.port().unwrap());
        opts.hosts = opts.hosts.with_plain_http(host);
    }
    opts
}

/// Fetches `desc` whole.
pub(crate) async fn fetch_all(f: &dyn Fetcher, desc: &Descriptor) -> dist_remotes::Result<Vec<u8>> {
    let parts: Vec<Bytes> = f.fetch(desc).await?.try_collect().await?;
    Ok(parts.concat())
}

/// Options for a scripted server on loopback: plain HTTP, four fast attempts, 5 s header
/// and stall bounds (generous: the machine may be busy), three reopenings.
pub(crate) fn fault_options(host: &str) -> ResolverOptions {
    ResolverOptions::default()
        .with_credentials(Arc::new(dist_remotes::Anonymous))
        .with_hosts(HostsConfig::new().with_plain_http(host))
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(4)
                .with_delays(Duration::from_millis(10), Duration::from_millis(50)),
        )
        .with_timeouts(Duration::from_secs(5), Duration::from_secs(5))
        .with_header_timeout(Duration::from_secs(5))
        .with_max_resumes(3)
}

/// `n` bytes of a fixed pattern.
pub(crate) fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// The sha256 descriptor of `bytes`.
pub(crate) fn desc(bytes: &[u8], mt: MediaType) -> Descriptor {
    Descriptor::new(mt, bytes.len() as u64, dist_content::sha256_of(bytes))
}

/// A fetcher for `<host>/repo`.
pub(crate) async fn fault_fetcher(opts: ResolverOptions, host: &str) -> Box<dyn Fetcher> {
    DockerResolver::new(opts)
        .fetcher(&format!("{host}/repo"))
        .await
        .unwrap()
}

/// Fetches `d` from `offset` to the end.
pub(crate) async fn collect(
    f: &dyn Fetcher,
    d: &Descriptor,
    offset: u64,
) -> dist_remotes::Result<Vec<u8>> {
    let parts: Vec<Bytes> = f.fetch_at(d, offset).await?.try_collect().await?;
    Ok(parts.concat())
}

/// A script serving `blob` for every request, honouring Range.
pub(crate) fn serve_blob(
    blob: Vec<u8>,
) -> impl Fn(&Request, usize) -> Reply + Send + Sync + 'static {
    move |req, _| Reply::ranged(req, &blob)
}

/// A server answering every manifest request with `body` (OCI manifest type) and, per
/// method, an optional `Docker-Content-Digest`.
pub(crate) fn manifest_server(
    body: Vec<u8>,
    head_digest: Option<String>,
    get_digest: Option<String>,
) -> FaultServer {
    FaultServer::start(move |req, _| {
        let digest = if req.method == "HEAD" {
            &head_digest
        } else {
            &get_digest
        };
        let mut r = Reply::ok(body.clone()).header("Content-Type", OCI_MANIFEST);
        if let Some(d) = digest {
            r = r.header("Docker-Content-Digest", d.clone());
        }
        r
    })
    .unwrap()
}
