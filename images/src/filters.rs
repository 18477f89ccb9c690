//! Handler wrappers that prune an index by platform: [`filter_platforms`] and
//! [`limit_manifests`] (containerd's `FilterPlatforms` and `LimitManifests`).

use async_trait::async_trait;
use oci_spec::image::Descriptor;

use crate::media_types;
use crate::platforms::Matcher;
use crate::{Error, Handler, Result};

/// The handler returned by [`filter_platforms`].
#[derive(Debug, Clone)]
pub struct FilterPlatforms<H, M> {
    inner: H,
    matcher: M,
}

/// Wraps `handler` so that children whose descriptor names a platform `matcher` does not
/// accept are dropped; children without a platform are kept, except the artifacts an index
/// lists (signatures, SBOMs: a manifest entry with an `artifactType`), which a pull has no
/// use for and a registry or archive may not even hold.
pub fn filter_platforms<H: Handler, M: Matcher>(handler: H, matcher: M) -> FilterPlatforms<H, M> {
    FilterPlatforms {
        inner: handler,
        matcher,
    }
}

#[async_trait]
impl<H: Handler, M: Matcher> Handler for FilterPlatforms<H, M> {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        let mut children = self.inner.handle(desc).await?;
        children.retain(|c| match c.platform() {
            Some(p) => self.matcher.matches(p),
            None => !is_artifact_entry(c),
        });
        Ok(children)
    }
}

/// Whether an index entry without a platform is an artifact rather than an image: a
/// manifest that names an `artifactType`.
pub(crate) fn is_artifact_entry(desc: &Descriptor) -> bool {
    desc.platform().is_none()
        && desc.artifact_type().is_some()
        && media_types::is_manifest_or_index(desc.media_type())
}

/// The handler returned by [`limit_manifests`].
#[derive(Debug, Clone)]
pub struct LimitManifests<H, M> {
    inner: H,
    matcher: M,
    limit: usize,
}

/// Wraps `handler` so that an index's children are ordered by `matcher`'s preference (best
/// first; unmatched and platform-less ones last, in their original order) and only the
/// first `limit` are kept. `limit` 0 keeps them all, only ordered. With a limit, an index
/// left with no children (say, after [`filter_platforms`] removed them all) is a
/// `NotFound` error rather than an image with nothing in it.
pub fn limit_manifests<H: Handler, M: Matcher>(
    handler: H,
    matcher: M,
    limit: usize,
) -> LimitManifests<H, M> {
    LimitManifests {
        inner: handler,
        matcher,
        limit,
    }
}

#[async_trait]
impl<H: Handler, M: Matcher> Handler for LimitManifests<H, M> {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        let mut children = self.inner.handle(desc).await?;
        if media_types::is_index(desc.media_type()) {
            children.sort_by_key(|c| {
                c.platform()
                    .as_ref()
                    .and_then(|p| self.matcher.rank(p))
                    .unwrap_or(usize::MAX)
            });
            if self.limit > 0 {
                if children.is_empty() {
                    return Err(Error::NotFound(format!(
                        "index {}: no manifest for the requested platform",
                        desc.digest()
                    )));
                }
                children.truncate(self.limit);
            }
        }
        Ok(children)
    }
}
