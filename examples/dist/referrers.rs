//! `referrers`: what hangs off an image (signatures, SBOMs), one per line; and the
//! signature check `pull --verify-key` runs before anything is fetched or unpacked.

use std::path::Path;

use dist::remotes::{CosignVerifier, DockerResolver, Referrers, Resolver, verify_image};
use oci_spec::image::Descriptor;

use crate::CmdResult;
use crate::cli::Global;
use crate::registry;

/// `referrers`: prints `digest<TAB>artifact type<TAB>size` for each referrer of the
/// image `reference` resolves to, of `artifact_type` only when given.
pub async fn referrers(global: &Global, reference: &str, artifact_type: Option<&str>) -> CmdResult {
    let name = registry::normalize_ref(reference)?;
    let resolver = registry::resolver(global, &name).await?;
    let (resolved, root) = resolver.resolve(&name).await?;
    let remote = resolver.referrers(&resolved).await?;
    for d in remote.referrers(root.digest(), artifact_type).await? {
        let ty = d
            .artifact_type()
            .as_ref()
            .map_or_else(|| "-".to_owned(), ToString::to_string);
        outln!("{}\t{ty}\t{}", d.digest(), d.size())?;
    }
    Ok(())
}

/// Refuses the image `name` (resolved to `root`) unless a cosign signature made with the
/// public key in `key` (PEM) signs exactly `root`.
pub async fn verify(
    resolver: &DockerResolver,
    name: &str,
    root: &Descriptor,
    key: &Path,
) -> CmdResult {
    let pem = tokio::fs::read_to_string(key)
        .await
        .map_err(|e| format!("reading {}: {e}", key.display()))?;
    let verifier = CosignVerifier::from_pem(&pem)?;
    let remote = resolver.referrers(name).await?;
    let max = crate::fetch::LIMITS.max_manifest_size;
    verify_image(&verifier, &remote, name, root, max).await?;
    Ok(())
}
