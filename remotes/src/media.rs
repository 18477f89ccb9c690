//! The media types the remotes crate needs to tell manifests from blobs.

use oci_spec::image::MediaType;

/// Docker schema 2 image manifest.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The `Accept` header for manifest requests: every manifest and index type we read,
/// then anything.
pub(crate) fn manifest_accept() -> String {
    format!("{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}, {OCI_MANIFEST}, {OCI_INDEX}, */*")
}

/// Whether `mt` is a manifest or an index (served from `manifests/`, size-bounded).
pub(crate) fn is_manifest(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageManifest | MediaType::ImageIndex)
        || matches!(
            mt.to_string().as_str(),
            DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
        )
}

/// What kind of object a media type names, for ingest ref keys.
pub(crate) fn ref_kind(mt: &MediaType) -> &'static str {
    let s = mt.to_string();
    match s.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST => "manifest",
        DOCKER_MANIFEST_LIST | OCI_INDEX => "index",
        "application/vnd.oci.image.config.v1+json"
        | "application/vnd.docker.container.image.v1+json" => "config",
        s if s.starts_with("application/vnd.oci.image.layer.")
            || s.starts_with("application/vnd.docker.image.rootfs.") =>
        {
            "layer"
        }
        _ => "unknown",
    }
}
