//! The [`Referrers`] trait: what hangs off an image (signatures, SBOMs, attestations), as
//! OCI 1.1 defines it, and the tags that name it on registries without the referrers API.

use async_trait::async_trait;
use oci_spec::image::{Descriptor, Digest};

use crate::Result;

/// Most pages of a referrers listing followed (`Link: <…>; rel="next"`), so that a
/// registry cannot keep a client paging forever.
pub const MAX_REFERRERS_PAGES: usize = 64;

/// The tag a registry without the referrers API keeps the referrers index of `digest`
/// under (the distribution spec's tag schema): `<alg>-<hex>`, as `sha256-<hex>`, with the
/// algorithm cut to 32 and the hex to 64 characters so that every tag is valid.
pub fn referrers_tag(digest: &Digest) -> String {
    let alg = digest.algorithm().as_ref();
    let hex = digest.digest();
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    format!("{}-{}", cut(alg, 32), cut(hex, 64))
}

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", referrers_tag(digest))
}

/// The artifact type of a manifest, as a referrers listing reports it: the manifest's own
/// `artifactType`, else its config's media type (the OCI 1.1 rule).
pub fn artifact_type_of(manifest: &oci_spec::image::ImageManifest) -> String {
    match manifest.artifact_type() {
        Some(t) => t.to_string(),
        None => manifest.config().media_type().to_string(),
    }
}

/// Keeps the descriptors of `artifact_type` (all of them for `None`).
pub(crate) fn filter_by_type(descs: &mut Vec<Descriptor>, artifact_type: Option<&str>) {
    if let Some(want) = artifact_type {
        descs.retain(|d| {
            d.artifact_type()
                .as_ref()
                .is_some_and(|t| t.to_string() == want)
        });
    }
}

/// Reads what hangs off the images of one repository: their referrers and tag-schema
/// attachments (cosign's `sha256-<hex>.sig`).
///
/// [`DockerResolver::referrers`](crate::DockerResolver::referrers) hands one out for a
/// registry; a [`Verifier`](crate::Verifier) gets one to find signatures with. A listing
/// uses the referrers API where the registry has it and the `sha256-<hex>` tag otherwise,
/// so callers never care which:
///
/// ```no_run
/// use dist_remotes::{DockerResolver, Referrers, Resolver};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let resolver = DockerResolver::default();
/// let (name, root) = resolver.resolve("registry.example/app:1").await?;
/// let referrers = resolver.referrers(&name).await?;
/// for sbom in referrers.referrers(root.digest(), Some("application/spdx+json")).await? {
///     println!("{} {}", sbom.digest(), sbom.size());
/// }
/// // cosign's signature attachment, by tag, with its manifest's bytes (verified).
/// let tag = dist_remotes::signature_tag(root.digest());
/// if let Some(sig) = referrers.tagged(&tag).await? {
///     let manifest = referrers.fetch_bytes(&sig, 4 << 20).await?;
///     println!("{} bytes of signature manifest", manifest.len());
/// }
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Referrers: Send + Sync {
    /// The descriptors of the manifests whose `subject` is `subject`, each with its
    /// `artifactType` and annotations; only those of `artifact_type` when one is given. An
    /// image nothing refers to has none (an empty list, not an error).
    async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>>;

    /// The manifest or index tagged `tag` in this repository, `None` when there is no
    /// such tag.
    async fn tagged(&self, tag: &str) -> Result<Option<Descriptor>>;

    /// The bytes of `desc` (a manifest, index or small blob of this repository), checked
    /// against its size and digest, refused when larger than `max` bytes.
    async fn fetch_bytes(&self, desc: &Descriptor, max: u64) -> Result<Vec<u8>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(s: &str) -> Digest {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_fallback_tag_is_the_algorithm_and_hex_joined_by_a_dash() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d = digest(&format!("sha256:{hex}"));
        assert_eq!(referrers_tag(&d), format!("sha256-{hex}"));
        assert_eq!(signature_tag(&d), format!("sha256-{hex}.sig"));
    }

    #[test]
    fn a_sha512_fallback_tag_is_cut_to_a_valid_tag_length() {
        let d = digest(&format!("sha512:{}", "ab".repeat(64)));
        let tag = referrers_tag(&d);
        assert_eq!(tag, format!("sha512-{}", "ab".repeat(32)));
        assert!(tag.len() <= 128);
    }
}
