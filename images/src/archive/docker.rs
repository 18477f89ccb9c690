//! Docker's archive manifest (`manifest.json`): written beside the OCI layout on export,
//! and on import turned into a Docker schema2 manifest when an archive has nothing else.

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::{Deserialize, Serialize};

use crate::media_types;

/// One image of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The config's path in the archive.
    #[serde(rename = "Config")]
    pub(super) config: String,
    /// Familiar names with tags (`busybox:latest`).
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty")]
    pub(super) repo_tags: Vec<String>,
    /// The layers' paths in the archive, base first.
    #[serde(rename = "Layers", default, deserialize_with = "null_as_empty")]
    pub(super) layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// The path of a blob in an OCI layout.
pub(super) fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.digest())
}

/// The digest a `blobs/<alg>/<hex>` path names, if it is one.
pub(super) fn digest_of_path(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    if hex.contains('/') {
        return None;
    }
    format!("{alg}:{hex}").parse().ok()
}

/// The layer media type for a blob that starts with `magic`, as containerd's importer
/// decides it: gzip and zstd by their magic numbers, a plain tar otherwise.
pub(super) fn layer_media_type(magic: &[u8]) -> MediaType {
    let mt = if magic.starts_with(&[0x1f, 0x8b]) {
        media_types::DOCKER_LAYER_GZIP
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        media_types::DOCKER_LAYER_ZSTD
    } else {
        media_types::DOCKER_LAYER
    };
    MediaType::from(mt)
}

/// The Docker schema2 manifest for a config and its layers (what `docker save`'s image
/// had in the registry, up to the layer compression it kept).
pub(super) fn schema2_manifest(config: &Descriptor, layers: &[Descriptor]) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::DOCKER_MANIFEST,
        "config": config,
        "layers": layers,
    })
}
