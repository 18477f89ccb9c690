//! Shared by the push tests: a small image written into a `LocalStore`, pushed and read
//! back, and resolver options for a registry reached through a `CountingProxy`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use dist_content::LocalStore;
use dist_remotes::{
    HostsConfig, PushOutcome, Pusher, Resolver, ResolverOptions, RetryPolicy, StaticCredentials,
};
use dist_test_support::{AuthMode, PASSWORD, Registry, USERNAME};
use oci_spec::image::{Descriptor, MediaType};

/// A one-layer OCI image in a fresh store.
pub(crate) struct Image {
    _dir: tempfile::TempDir,
    pub(crate) store: LocalStore,
    pub(crate) layer: Descriptor,
    pub(crate) layer_bytes: Vec<u8>,
    pub(crate) config: Descriptor,
    pub(crate) manifest: Descriptor,
    pub(crate) manifest_bytes: Vec<u8>,
}

/// `n` bytes that differ from image to image (`seed`), so blobs never collide by accident.
pub(crate) fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 31 + usize::from(seed) * 7) % 251) as u8)
        .collect()
}

fn desc(bytes: &[u8], mt: MediaType) -> Descriptor {
    Descriptor::new(mt, bytes.len() as u64, dist_content::sha256_of(bytes))
}

/// An image whose layer has `layer_size` bytes, written into a new `LocalStore`.
pub(crate) async fn image(layer_size: usize, seed: u8) -> Image {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    let layer_bytes = bytes(layer_size, seed);
    let layer = desc(&layer_bytes, MediaType::ImageLayerGzip);
    let config_bytes = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"comment":"{seed}"}}"#
    )
    .into_bytes();
    let config = desc(&config_bytes, MediaType::ImageConfig);
    let manifest_bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
        config.digest(),
        config.size(),
        layer.digest(),
        layer.size()
    )
    .into_bytes();
    let manifest = desc(&manifest_bytes, MediaType::ImageManifest);
    for (d, b) in [
        (&layer, &layer_bytes),
        (&config, &config_bytes),
        (&manifest, &manifest_bytes),
    ] {
        dist_content::write_blob(&store, "t", d, b.as_slice())
            .await
            .unwrap();
    }
    Image {
        _dir: dir,
        store,
        layer,
        layer_bytes,
        config,
        manifest,
        manifest_bytes,
    }
}

impl Image {
    /// Pushes layer, config and manifest in order; returns the layer's outcome.
    pub(crate) async fn push(&self, pusher: &dyn Pusher) -> dist_remotes::Result<PushOutcome> {
        let layer = pusher.push(&self.layer, &self.store).await?;
        pusher.push(&self.config, &self.store).await?;
        pusher.push(&self.manifest, &self.store).await?;
        Ok(layer)
    }

    /// Reads the image back from `reference` (`host/repo:tag`): the tag names the manifest,
    /// and every blob comes back byte for byte.
    pub(crate) async fn assert_served(&self, r: &dyn Resolver, reference: &str) {
        let (name, root) = r.resolve(reference).await.unwrap();
        assert_eq!(root.digest(), self.manifest.digest());
        let f = r.fetcher(&name).await.unwrap();
        let manifest = crate::common::fetch_all(f.as_ref(), &root).await.unwrap();
        assert!(manifest == self.manifest_bytes, "the exact manifest bytes");
        let layer = crate::common::fetch_all(f.as_ref(), &self.layer)
            .await
            .unwrap();
        assert!(layer == self.layer_bytes, "the layer byte for byte");
    }
}

/// Options for `reg` reached at `host` (the registry's own, or a proxy's): plain HTTP,
/// credentials for `host`, the token server trusted on plain HTTP, three fast attempts.
pub(crate) fn options_via(reg: &Registry, host: &str) -> ResolverOptions {
    let mut hosts = HostsConfig::new().with_plain_http(host);
    if let Some(t) = reg.token_issuer() {
        let realm = url::Url::parse(&t.realm()).unwrap();
        hosts = hosts.with_plain_http(format!(
            "{}:{}",
            realm.host_str().unwrap(),
            realm.port().unwrap()
        ));
    }
    let mut opts = plain(host).with_hosts(hosts);
    if reg.mode() != AuthMode::None {
        opts = opts.with_credentials(Arc::new(
            StaticCredentials::new().with_basic(host, USERNAME, PASSWORD),
        ));
    }
    opts
}

/// Anonymous options for a plain-HTTP registry at `host`, three fast attempts.
pub(crate) fn plain(host: &str) -> ResolverOptions {
    ResolverOptions::default()
        .with_credentials(Arc::new(dist_remotes::Anonymous))
        .with_hosts(HostsConfig::new().with_plain_http(host))
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_delays(Duration::from_millis(10), Duration::from_millis(100)),
        )
}
