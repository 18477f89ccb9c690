//! Image archives: an OCI image layout in a tar stream, as `ctr images export`,
//! `skopeo copy … oci-archive:` and `docker save` write them.
//!
//! - [`export`] writes the images given, read from any [`Provider`](dist_content::Provider), as an OCI layout tar
//!   (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) with Docker's `manifest.json` beside
//!   it, as containerd's exporter does, so `docker load`, `ctr images import` and skopeo's
//!   `oci-archive:` and `docker-archive:` all read it. Blobs stream from the store into the
//!   tar; none is held in memory.
//! - [`import`] reads an OCI layout tar or a `docker save` archive (with or without an
//!   OCI layout inside) and streams each blob straight into a content store under its
//!   digest, verified before it is committed, in whatever order the tar holds it; the
//!   index is resolved at the end. Platforms and attestations an index names but the
//!   archive lacks are skipped and reported; a corrupt or truncated archive commits no
//!   blob under a wrong digest and records no image.
//!
//! Both do their tar work on tokio's blocking pool (the `tar` crate is synchronous) and
//! reach the store through the runtime's handle, so no runtime worker blocks.
//!
//! This lives in `dist-images` because an archive is images (names, indexes, platforms)
//! over content: it needs only `dist-content`, the tar format and the image walk here.

mod docker;
mod export;
mod import;
mod select;
mod sync_io;

pub use export::{ExportOptions, ExportReport, PlatformChoice, export};
pub use import::{ImportOptions, ImportReport, import};
pub use select::Skipped;

/// The annotation BuildKit puts on attestation manifests in an index.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The value of [`ANNOTATION_REFERENCE_TYPE`] that marks an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// Docker's archive manifest (`docker save`, `docker load`).
pub const DOCKER_MANIFEST_FILE: &str = "manifest.json";

#[cfg(test)]
mod tests;
