//! Signature policy: the [`Verifier`] hook a pull runs before anything is unpacked, and
//! [`CosignVerifier`], which checks sigstore/cosign key-pair signatures.

use async_trait::async_trait;
use base64::Engine;
use oci_spec::image::{Descriptor, Digest, ImageManifest};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

use crate::referrers::signature_tag;
use crate::{ErrorKind, Referrers};

/// The annotation of a cosign signature layer that holds the signature: base64 of the
/// DER-encoded ECDSA signature over the layer's bytes (the "simple signing" payload).
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The artifact type cosign gives signatures it stores as OCI 1.1 referrers.
const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// The largest signature payload read: a simple-signing payload is a few hundred bytes.
const MAX_PAYLOAD: u64 = 1 << 20;

/// Most signature manifests read for one image: a registry listing thousands of them
/// cannot make a pull fetch thousands of manifests (cosign keeps one, with a layer per
/// signature).
const MAX_SIGNATURE_MANIFESTS: usize = 16;

/// Most signatures (layers) checked for one image, each a payload fetch.
const MAX_SIGNATURES: usize = 64;

/// Why an image was refused (or could not be checked).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No signature at all: no `sha256-<hex>.sig` attachment and no signature referrer.
    #[error("{image}: unsigned: no cosign signature found")]
    Unsigned {
        /// The image name and digest.
        image: String,
    },
    /// Signatures exist, but none was made with the trusted key.
    #[error("{image}: no signature was made with the trusted key ({checked} checked)")]
    WrongKey {
        /// The image name and digest.
        image: String,
        /// How many signatures were checked.
        checked: usize,
    },
    /// A signature made with the trusted key signs another manifest: the tag was moved to
    /// other content, or the signature copied onto it.
    #[error("{image}: the signature is for {signed}, not the resolved {resolved}")]
    DigestMismatch {
        /// The image name.
        image: String,
        /// The digest the name resolved to.
        resolved: String,
        /// The digest the signed payload names (elided).
        signed: String,
    },
    /// A key, signature or payload could not be read.
    #[error("{what}: {reason}")]
    Malformed {
        /// What was being read.
        what: String,
        /// What was wrong.
        reason: String,
        /// The parser's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The registry could not be asked.
    #[error(transparent)]
    Remote(#[from] crate::Error),
}

impl VerifyError {
    /// The kind of this error: a refusal is `FailedPrecondition`, an unreadable key
    /// `InvalidArgument`, a registry failure keeps its own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VerifyError::Unsigned { .. }
            | VerifyError::WrongKey { .. }
            | VerifyError::DigestMismatch { .. } => ErrorKind::FailedPrecondition,
            VerifyError::Malformed { .. } => ErrorKind::InvalidArgument,
            VerifyError::Remote(e) => e.kind(),
        }
    }

    fn malformed(
        what: impl Into<String>,
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        VerifyError::Malformed {
            what: what.into(),
            reason: reason.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// A signature policy: decides whether a resolved image may be pulled.
///
/// A pull calls it after resolving and before any layer is applied or the image recorded
/// (see [`verify_image`]); an `Err` refuses the image. It sees the image's name, its root
/// descriptor (manifest or index), the root's exact bytes, and the repository's referrers
/// and tag-schema attachments. A policy that only admits images carrying a given
/// annotation:
///
/// ```
/// use async_trait::async_trait;
/// use dist_remotes::{Referrers, VerifyError, Verifier};
/// use oci_spec::image::Descriptor;
///
/// struct RequireAnnotation(&'static str);
///
/// #[async_trait]
/// impl Verifier for RequireAnnotation {
///     async fn verify(
///         &self,
///         name: &str,
///         root: &Descriptor,
///         manifest: &[u8],
///         _remote: &dyn Referrers,
///     ) -> Result<(), VerifyError> {
///         let m: serde_json::Value = serde_json::from_slice(manifest).map_err(|e| {
///             VerifyError::Malformed {
///                 what: name.to_owned(),
///                 reason: "not JSON".to_owned(),
///                 source: Some(Box::new(e)),
///             }
///         })?;
///         match m["annotations"].get(self.0) {
///             Some(_) => Ok(()),
///             None => Err(VerifyError::Unsigned { image: format!("{name}@{}", root.digest()) }),
///         }
///     }
/// }
///
/// // Handed to whatever runs the pull, as `dist pull --verify-key` hands a CosignVerifier.
/// let policy: Box<dyn Verifier> = Box::new(RequireAnnotation("org.example.approved"));
/// # drop(policy);
/// ```
#[async_trait]
pub trait Verifier: Send + Sync {
    /// Admits (`Ok`) or refuses the image `name` whose root is `root`, with bytes
    /// `manifest`; `remote` lists its referrers and reads attachments.
    async fn verify(
        &self,
        name: &str,
        root: &Descriptor,
        manifest: &[u8],
        remote: &dyn Referrers,
    ) -> Result<(), VerifyError>;
}

/// Runs `verifier` on the image `name` resolved to `root`: fetches the root's bytes from
/// `remote` (verified, at most `max_manifest_size`) and asks the verifier. Call it after
/// resolving and before fetching layers, so that a refused image leaves nothing behind.
pub async fn verify_image(
    verifier: &dyn Verifier,
    remote: &dyn Referrers,
    name: &str,
    root: &Descriptor,
    max_manifest_size: u64,
) -> Result<(), VerifyError> {
    let manifest = remote.fetch_bytes(root, max_manifest_size).await?;
    verifier.verify(name, root, &manifest, remote).await
}

/// Verifies cosign key-pair signatures (`cosign sign --key`), as `cosign verify --key`
/// does without a transparency log.
///
/// The signatures of an image with digest `sha256:<hex>` are the layers of the manifest
/// tagged `sha256-<hex>.sig` (and of referrers of artifact type
/// `application/vnd.dev.cosign.artifact.sig.v1+json`): each layer is a "simple signing"
/// JSON payload, with an ECDSA P-256/SHA-256 signature over it in the annotation
/// [`COSIGN_SIGNATURE_ANNOTATION`]. The image is admitted when a payload signed by the
/// key names the resolved digest in `critical.image.docker-manifest-digest`.
///
/// ```
/// let pem = "-----BEGIN PUBLIC KEY-----\n\
///     MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbvUg5gYfGiuwS6xVJCJskksIy5pH\n\
///     1CepzwT3OtGEJwayEoGcxVEjhrU/inUwCbJ+gPOld0gesPapq+iB41rK+g==\n\
///     -----END PUBLIC KEY-----\n";
/// let verifier = dist_remotes::CosignVerifier::from_pem(pem)?;
/// # let _ = verifier;
/// let err = dist_remotes::CosignVerifier::from_pem("not a key").unwrap_err();
/// assert_eq!(err.kind(), dist_remotes::ErrorKind::InvalidArgument);
/// # Ok::<(), dist_remotes::VerifyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CosignVerifier {
    key: VerifyingKey,
}

/// What the signatures found said, for the error when none admits the image.
#[derive(Default)]
struct Tally {
    checked: usize,
    /// A digest a valid signature named instead of the resolved one.
    other_digest: Option<String>,
}

impl CosignVerifier {
    /// A verifier trusting the P-256 public key in `pem` (a `PUBLIC KEY` block, as
    /// `cosign generate-key-pair` writes to `cosign.pub`).
    pub fn from_pem(pem: &str) -> Result<Self, VerifyError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|e| VerifyError::malformed("public key", "not a PEM P-256 public key", e))?;
        Ok(CosignVerifier { key })
    }

    /// The signature manifests of `root`: the `.sig` tag, then signature referrers.
    async fn signature_manifests(
        &self,
        root: &Descriptor,
        remote: &dyn Referrers,
    ) -> Result<Vec<ImageManifest>, VerifyError> {
        let mut found = Vec::new();
        if let Some(tagged) = remote.tagged(&signature_tag(root.digest())).await? {
            found.push(tagged);
        }
        found.extend(
            remote
                .referrers(root.digest(), Some(COSIGN_SIGNATURE_ARTIFACT))
                .await?,
        );
        if found.len() > MAX_SIGNATURE_MANIFESTS {
            tracing::warn!(
                image = %root.digest(),
                found = found.len(),
                "reading only the first {MAX_SIGNATURE_MANIFESTS} signature manifests"
            );
            found.truncate(MAX_SIGNATURE_MANIFESTS);
        }
        let mut manifests = Vec::with_capacity(found.len());
        for desc in found {
            let bytes = remote
                .fetch_bytes(&desc, dist_images::MAX_MANIFEST_SIZE)
                .await?;
            let manifest = dist_images::parse_manifest(&desc, &bytes).map_err(|e| {
                VerifyError::malformed(desc.digest().to_string(), "not a signature manifest", e)
            })?;
            manifests.push(manifest);
        }
        Ok(manifests)
    }

    /// Checks one signature layer: `Ok(true)` when signed by the key for `resolved`.
    async fn check_layer(
        &self,
        layer: &Descriptor,
        signature: &str,
        resolved: &Digest,
        remote: &dyn Referrers,
        tally: &mut Tally,
    ) -> Result<bool, VerifyError> {
        tally.checked = tally.checked.saturating_add(1);
        let Some(sig) = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|der| Signature::from_der(&der).ok())
        else {
            // Not a signature this key could have made.
            return Ok(false);
        };
        let payload = remote.fetch_bytes(layer, MAX_PAYLOAD).await?;
        if self.key.verify(&payload, &sig).is_err() {
            return Ok(false);
        }
        let signed = signed_digest(&payload).map_err(|e| {
            VerifyError::malformed(
                layer.digest().to_string(),
                "not a simple-signing payload",
                e,
            )
        })?;
        if signed == resolved.as_ref() {
            return Ok(true);
        }
        tally.other_digest = Some(dist_content::elide(&signed));
        Ok(false)
    }
}

/// `critical.image.docker-manifest-digest` of a simple-signing payload.
fn signed_digest(payload: &[u8]) -> Result<String, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Payload {
        critical: Critical,
    }
    #[derive(serde::Deserialize)]
    struct Critical {
        image: Image,
    }
    #[derive(serde::Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    let p: Payload = serde_json::from_slice(payload)?;
    Ok(p.critical.image.digest)
}

#[async_trait]
impl Verifier for CosignVerifier {
    async fn verify(
        &self,
        name: &str,
        root: &Descriptor,
        _manifest: &[u8],
        remote: &dyn Referrers,
    ) -> Result<(), VerifyError> {
        let image = format!("{}@{}", dist_content::elide(name), root.digest());
        let mut tally = Tally::default();
        for manifest in self.signature_manifests(root, remote).await? {
            for layer in manifest.layers() {
                if tally.checked >= MAX_SIGNATURES {
                    break;
                }
                let Some(sig) = layer
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(COSIGN_SIGNATURE_ANNOTATION))
                else {
                    continue;
                };
                if self
                    .check_layer(layer, sig, root.digest(), remote, &mut tally)
                    .await?
                {
                    return Ok(());
                }
            }
        }
        Err(match (tally.checked, tally.other_digest) {
            (0, _) => VerifyError::Unsigned { image },
            (_, Some(signed)) => VerifyError::DigestMismatch {
                image: dist_content::elide(name),
                resolved: root.digest().to_string(),
                signed,
            },
            (checked, None) => VerifyError::WrongKey { image, checked },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_digest_is_read_from_the_critical_section() {
        let payload = br#"{"critical":{"identity":{"docker-reference":"r/app"},
            "image":{"docker-manifest-digest":"sha256:ab"},
            "type":"cosign container image signature"},"optional":null}"#;
        assert_eq!(signed_digest(payload).ok().as_deref(), Some("sha256:ab"));
        assert!(signed_digest(br#"{"critical":{}}"#).is_err());
    }

    #[test]
    fn a_private_key_is_not_taken_for_a_public_one() {
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";
        let err = CosignVerifier::from_pem(pem).err();
        assert!(
            matches!(err, Some(VerifyError::Malformed { .. })),
            "{err:?}"
        );
    }
}
