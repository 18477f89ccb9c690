//! Test fixtures: images built into a real `dist_content::LocalStore` in a temp dir.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use dist_content::LocalStore;
use dist_images::media_types;
use oci_spec::image::{Arch, Descriptor, Digest, MediaType, Os, Platform};
use serde_json::json;

/// The descriptor of `bytes` as `media_type`, without storing anything.
pub fn describe(media_type: MediaType, bytes: &[u8]) -> Descriptor {
    Descriptor::new(
        media_type,
        bytes.len() as u64,
        dist_content::sha256_of(bytes),
    )
}

/// `os/arch[/variant]` split by hand (not through the crate's parser under test).
pub fn plat(s: &str) -> Platform {
    let parts: Vec<&str> = s.split('/').collect();
    let mut p = Platform::default();
    p.set_os(Os::from(parts[0]));
    p.set_architecture(Arch::from(parts[1]));
    p.set_variant(parts.get(2).map(|v| (*v).to_owned()));
    p
}

/// A content store in a temp dir plus builders for images.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub store: Arc<LocalStore>,
}

/// One platform's image as built by [`Fixture::image`].
pub struct Built {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
}

impl Built {
    /// Every descriptor in walk order: manifest, config, layers.
    pub fn all(&self) -> Vec<Descriptor> {
        let mut v = vec![self.manifest.clone(), self.config.clone()];
        v.extend(self.layers.iter().cloned());
        v
    }
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(dir.path().join("content")).unwrap());
        Fixture { _dir: dir, store }
    }

    /// Stores `bytes` as a verified blob.
    pub async fn put(&self, media_type: MediaType, bytes: &[u8]) -> Descriptor {
        let desc = describe(media_type, bytes);
        let reference = format!("test-{}", desc.digest());
        dist_content::write_blob(&*self.store, &reference, &desc, bytes)
            .await
            .unwrap();
        desc
    }

    pub async fn put_json(&self, media_type: MediaType, value: &serde_json::Value) -> Descriptor {
        self.put(media_type, &serde_json::to_vec(value).unwrap())
            .await
    }

    /// A layer blob whose content is `seed` (the bytes need not be a real tarball here).
    pub async fn layer(&self, seed: &str) -> Descriptor {
        self.put(MediaType::ImageLayerGzip, seed.as_bytes()).await
    }

    pub fn config_json(platform: &str, diff_ids: &[Digest]) -> serde_json::Value {
        let p = plat(platform);
        let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
        let mut v = json!({
            "architecture": p.architecture().to_string(),
            "os": p.os().to_string(),
            "rootfs": {"type": "layers", "diff_ids": ids},
        });
        if let Some(var) = p.variant() {
            v["variant"] = json!(var);
        }
        v
    }

    pub fn manifest_json(config: &Descriptor, layers: &[Descriptor]) -> serde_json::Value {
        json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": config,
            "layers": layers,
        })
    }

    /// An image for `platform` with layers made from `layer_seeds` (stored only when
    /// `store_layers`), its config and manifest stored.
    pub async fn image_with(
        &self,
        platform: &str,
        layer_seeds: &[&str],
        store_layers: bool,
    ) -> Built {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for seed in layer_seeds {
            let desc = if store_layers {
                self.layer(seed).await
            } else {
                describe(MediaType::ImageLayerGzip, seed.as_bytes())
            };
            layers.push(desc);
            diff_ids.push(
                describe(MediaType::ImageLayer, format!("diff-{seed}").as_bytes())
                    .digest()
                    .clone(),
            );
        }
        let config = self
            .put_json(
                MediaType::ImageConfig,
                &Self::config_json(platform, &diff_ids),
            )
            .await;
        let manifest = self
            .put_json(
                MediaType::ImageManifest,
                &Self::manifest_json(&config, &layers),
            )
            .await;
        Built {
            manifest,
            config,
            layers,
            diff_ids,
        }
    }

    /// An image for `platform` with two layers unique to it.
    pub async fn image(&self, platform: &str) -> Built {
        let a = format!("{platform} layer a");
        let b = format!("{platform} layer b");
        self.image_with(platform, &[&a, &b], true).await
    }

    /// An OCI index over `entries` (descriptor, optional platform).
    pub async fn index(&self, entries: &[(Descriptor, Option<&str>)]) -> Descriptor {
        let manifests: Vec<Descriptor> = entries
            .iter()
            .map(|(d, p)| {
                let mut d = d.clone();
                d.set_platform(p.map(plat));
                d
            })
            .collect();
        self.put_json(
            MediaType::ImageIndex,
            &json!({
                "schemaVersion": 2,
                "mediaType": media_types::OCI_INDEX,
                "manifests": manifests,
            }),
        )
        .await
    }
}

/// The four platforms of the multi-platform test image, in index order.
pub const PLATFORMS: [&str; 4] = [
    "linux/amd64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "windows/amd64",
];

/// A multi-platform index over one image per entry of [`PLATFORMS`].
pub async fn multi_platform(fx: &Fixture) -> (Descriptor, Vec<Built>) {
    let mut built = Vec::new();
    for p in PLATFORMS {
        built.push(fx.image(p).await);
    }
    let entries: Vec<(Descriptor, Option<&str>)> = built
        .iter()
        .zip(PLATFORMS)
        .map(|(b, p)| (b.manifest.clone(), Some(p)))
        .collect();
    (fx.index(&entries).await, built)
}
