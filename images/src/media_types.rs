//! Media types of Docker schema2 and OCI images, and what each one means.
//!
//! `oci_spec::image::MediaType` names the OCI types; Docker's types are
//! `MediaType::Other(..)` there. Every comparison of a media type string happens in
//! [`kind`], so the helpers below agree with each other.

use oci_spec::image::MediaType;

/// Docker schema2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema2 manifest list (the multi-platform index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip-compressed layer (the common one).
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker zstd-compressed layer.
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) gzip layer, fetched from its `urls`.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker foreign (non-distributable) uncompressed layer.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar";
/// Docker schema1 signed manifest: recognised only to refuse it clearly.
pub const DOCKER_SCHEMA1_MANIFEST_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema1 manifest: recognised only to refuse it clearly.
pub const DOCKER_SCHEMA1_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// OCI image manifest (`MediaType::ImageManifest`).
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (`MediaType::ImageIndex`).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration (`MediaType::ImageConfig`).
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer (`MediaType::ImageLayer`).
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer (`MediaType::ImageLayerGzip`).
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer (`MediaType::ImageLayerZstd`).
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable uncompressed layer (deprecated by the spec, still met).
pub const OCI_LAYER_NONDISTRIBUTABLE: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable gzip layer.
pub const OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable zstd layer.
pub const OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// The media type is not a layer type we know.
    Unknown,
}

/// What a media type describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaKind {
    /// An image manifest (OCI or Docker schema2): a config and layers.
    Manifest,
    /// An index or manifest list: manifests for several platforms.
    Index,
    /// An image configuration.
    Config,
    /// A layer; `distributable` is false for foreign/non-distributable layers.
    Layer {
        /// How the tar stream is compressed.
        compression: Compression,
        /// False when registries may refuse to serve it (foreign layers).
        distributable: bool,
    },
    /// A Docker schema1 manifest, which this crate does not read.
    Schema1Manifest,
    /// Anything else (artifacts, signatures, attestations).
    Unknown,
}

/// The manifest and index types this crate reads, most preferred first: what a registry
/// request for a manifest accepts.
pub const MANIFEST_TYPES: [&str; 4] = [
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// Prefixes of every layer media type, as containerd's `images.IsLayerType` reads them:
/// layer types this crate has no constant for (encrypted layers, new compressions) are
/// still layers.
const LAYER_PREFIXES: [&str; 2] = [
    "application/vnd.oci.image.layer.",
    "application/vnd.docker.image.rootfs.",
];

/// Classifies a media type string: the one place media type strings are compared.
///
/// Layer types not named by a constant here still classify as
/// [`MediaKind::Layer`] by their prefix (as containerd does), with
/// [`Compression::Unknown`].
pub fn kind_of(media_type: &str) -> MediaKind {
    let layer = |compression, distributable| MediaKind::Layer {
        compression,
        distributable,
    };
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => MediaKind::Manifest,
        OCI_INDEX | DOCKER_MANIFEST_LIST => MediaKind::Index,
        OCI_CONFIG | DOCKER_CONFIG => MediaKind::Config,
        OCI_LAYER | DOCKER_LAYER => layer(Compression::None, true),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => layer(Compression::Gzip, true),
        OCI_LAYER_ZSTD | DOCKER_LAYER_ZSTD => layer(Compression::Zstd, true),
        OCI_LAYER_NONDISTRIBUTABLE | DOCKER_FOREIGN_LAYER => layer(Compression::None, false),
        OCI_LAYER_NONDISTRIBUTABLE_GZIP | DOCKER_FOREIGN_LAYER_GZIP => {
            layer(Compression::Gzip, false)
        }
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD => layer(Compression::Zstd, false),
        DOCKER_SCHEMA1_MANIFEST | DOCKER_SCHEMA1_MANIFEST_SIGNED => MediaKind::Schema1Manifest,
        other if LAYER_PREFIXES.iter().any(|p| other.starts_with(p)) => layer(
            Compression::Unknown,
            !(other.contains("nondistributable") || other.contains("foreign")),
        ),
        _ => MediaKind::Unknown,
    }
}

/// Classifies an `oci_spec` media type (as found in a [`Descriptor`](oci_spec::image::Descriptor)).
pub fn kind(media_type: &MediaType) -> MediaKind {
    kind_of(media_type.as_ref())
}

/// True for image manifests (OCI or Docker schema2), and not for indexes; see
/// [`is_manifest_or_index`] for both.
pub fn is_manifest(media_type: &MediaType) -> bool {
    kind(media_type) == MediaKind::Manifest
}

/// True for indexes and Docker manifest lists.
pub fn is_index(media_type: &MediaType) -> bool {
    kind(media_type) == MediaKind::Index
}

/// True for image manifests and indexes alike: what a registry serves from `manifests/`
/// and what the manifest size limit applies to.
pub fn is_manifest_or_index(media_type: &MediaType) -> bool {
    matches!(kind(media_type), MediaKind::Manifest | MediaKind::Index)
}

/// True for image configurations.
pub fn is_config(media_type: &MediaType) -> bool {
    kind(media_type) == MediaKind::Config
}

/// True for layers of any compression, distributable or not.
pub fn is_layer(media_type: &MediaType) -> bool {
    matches!(kind(media_type), MediaKind::Layer { .. })
}

/// True for foreign / non-distributable layers, which registries may refuse to serve.
pub fn is_non_distributable(media_type: &MediaType) -> bool {
    matches!(
        kind(media_type),
        MediaKind::Layer {
            distributable: false,
            ..
        }
    )
}

/// The compression of a layer media type; [`Compression::Unknown`] for anything else.
pub fn compression(media_type: &MediaType) -> Compression {
    match kind(media_type) {
        MediaKind::Layer { compression, .. } => compression,
        _ => Compression::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_constants_match_oci_spec_names() {
        let pairs = [
            (OCI_MANIFEST, MediaType::ImageManifest),
            (OCI_INDEX, MediaType::ImageIndex),
            (OCI_CONFIG, MediaType::ImageConfig),
            (OCI_LAYER, MediaType::ImageLayer),
            (OCI_LAYER_GZIP, MediaType::ImageLayerGzip),
            (OCI_LAYER_ZSTD, MediaType::ImageLayerZstd),
            (
                OCI_LAYER_NONDISTRIBUTABLE,
                MediaType::ImageLayerNonDistributable,
            ),
            (
                OCI_LAYER_NONDISTRIBUTABLE_GZIP,
                MediaType::ImageLayerNonDistributableGzip,
            ),
            (
                OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
                MediaType::ImageLayerNonDistributableZstd,
            ),
        ];
        for (s, mt) in pairs {
            assert_eq!(s, mt.as_ref());
            assert_eq!(MediaType::from(s), mt);
        }
    }

    #[test]
    fn docker_and_oci_types_classify_alike() {
        let m = |s: &str| MediaType::from(s);
        assert!(is_manifest(&m(DOCKER_MANIFEST)) && is_manifest(&MediaType::ImageManifest));
        assert!(is_index(&m(DOCKER_MANIFEST_LIST)) && is_index(&MediaType::ImageIndex));
        assert!(is_config(&m(DOCKER_CONFIG)) && is_config(&MediaType::ImageConfig));
        assert!(is_layer(&m(DOCKER_LAYER_GZIP)) && is_layer(&MediaType::ImageLayerGzip));
        assert!(!is_layer(&MediaType::ImageManifest));
        assert!(!is_manifest(&MediaType::ImageIndex));
    }

    #[test]
    fn layer_compression_is_read_from_the_media_type() {
        let m = |s: &str| MediaType::from(s);
        assert_eq!(compression(&MediaType::ImageLayer), Compression::None);
        assert_eq!(compression(&m(DOCKER_LAYER_GZIP)), Compression::Gzip);
        assert_eq!(compression(&MediaType::ImageLayerZstd), Compression::Zstd);
        assert_eq!(
            compression(&m(DOCKER_FOREIGN_LAYER_GZIP)),
            Compression::Gzip
        );
        assert_eq!(compression(&MediaType::ImageConfig), Compression::Unknown);
        assert_eq!(compression(&m("text/plain")), Compression::Unknown);
    }

    #[test]
    fn foreign_and_nondistributable_layers_are_flagged() {
        assert!(is_non_distributable(&MediaType::from(
            DOCKER_FOREIGN_LAYER_GZIP
        )));
        assert!(is_non_distributable(
            &MediaType::ImageLayerNonDistributableZstd
        ));
        assert!(!is_non_distributable(&MediaType::ImageLayerGzip));
    }

    #[test]
    fn manifest_or_index_covers_both_and_nothing_else() {
        let m = |s: &str| MediaType::from(s);
        for t in MANIFEST_TYPES {
            assert!(is_manifest_or_index(&m(t)), "{t}");
        }
        assert!(is_manifest(&m(DOCKER_MANIFEST)) && !is_manifest(&m(DOCKER_MANIFEST_LIST)));
        assert!(!is_manifest_or_index(&MediaType::ImageConfig));
        assert!(!is_manifest_or_index(&m(DOCKER_SCHEMA1_MANIFEST)));
        assert!(!is_manifest_or_index(&MediaType::ImageLayerGzip));
    }

    #[test]
    fn unnamed_layer_types_are_layers_by_prefix_as_in_containerd() {
        let enc = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";
        assert_eq!(
            kind_of(enc),
            MediaKind::Layer {
                compression: Compression::Unknown,
                distributable: true
            }
        );
        assert!(is_non_distributable(&MediaType::from(
            "application/vnd.docker.image.rootfs.foreign.diff.tar+zstd"
        )));
        assert_eq!(
            kind_of("application/vnd.oci.image.layerx"),
            MediaKind::Unknown
        );
    }

    #[test]
    fn schema1_and_artifacts_are_not_manifests() {
        assert_eq!(
            kind_of(DOCKER_SCHEMA1_MANIFEST_SIGNED),
            MediaKind::Schema1Manifest
        );
        assert_eq!(
            kind_of("application/vnd.cncf.helm.config.v1+json"),
            MediaKind::Unknown
        );
    }
}
