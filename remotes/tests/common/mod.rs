//! Shared helpers for the registry tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dist_remotes::{
    DockerResolver, Fetcher, HostsConfig, ResolverOptions, RetryPolicy, StaticCredentials,
};
use dist_test_support::{AuthMode, PASSWORD, Registry, USERNAME};
use futures::TryStreamExt;
use oci_spec::image::Descriptor;

/// Options for talking to a loopback test registry: plain HTTP, fast retries.
pub(crate) fn options(reg_host: &str, mode: AuthMode, password: &str) -> ResolverOptions {
    let mut opts = ResolverOptions::default()
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
