//! Reading manifests and indexes from a content [`Provider`], and the [`children`] handler
//! that turns them into the descriptors below them.

use std::sync::Arc;

use async_trait::async_trait;
use dist_content::Provider;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::media_types::{self, MediaKind};
use crate::{Error, Handler, Limits, Result};

/// The schema version every OCI and Docker schema2 manifest and index carries.
const SCHEMA_VERSION: u32 = 2;

fn invalid(desc: &Descriptor, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: desc.digest().to_string(),
        reason: reason.into(),
    }
}

/// Reads the whole blob `desc` names, refusing anything larger than `limit` bytes and
/// checking its size and digest ([`dist_content::read_blob`]). For manifests, indexes and
/// configs, never layers.
pub async fn read_blob<P: Provider + ?Sized>(
    provider: &P,
    desc: &Descriptor,
    limit: u64,
) -> Result<Vec<u8>> {
    Ok(dist_content::read_blob(provider, desc, limit).await?)
}

/// Checks the `mediaType` a manifest or index carries in its body against the descriptor's.
fn check_body_media_type(
    desc: &Descriptor,
    body: Option<&MediaType>,
    expected: MediaKind,
) -> Result<()> {
    match body {
        Some(mt) if media_types::kind(mt) != expected => Err(invalid(
            desc,
            format!(
                "body media type {mt} does not match descriptor media type {}",
                desc.media_type()
            ),
        )),
        _ => Ok(()),
    }
}

fn check_schema_version(desc: &Descriptor, version: u32) -> Result<()> {
    if version == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(invalid(
            desc,
            format!("unsupported schemaVersion {version}, expected {SCHEMA_VERSION}"),
        ))
    }
}

/// Parses `bytes` as the image manifest `desc` names (OCI or Docker schema2).
pub fn parse_manifest(desc: &Descriptor, bytes: &[u8]) -> Result<ImageManifest> {
    let manifest: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(desc.digest().to_string(), "manifest", e))?;
    check_schema_version(desc, manifest.schema_version())?;
    check_body_media_type(desc, manifest.media_type().as_ref(), MediaKind::Manifest)?;
    Ok(manifest)
}

/// Parses `bytes` as the index or Docker manifest list `desc` names.
pub fn parse_index(desc: &Descriptor, bytes: &[u8]) -> Result<ImageIndex> {
    let index: ImageIndex = serde_json::from_slice(bytes)
        .map_err(|e| Error::decode(desc.digest().to_string(), "index", e))?;
    check_schema_version(desc, index.schema_version())?;
    check_body_media_type(desc, index.media_type().as_ref(), MediaKind::Index)?;
    Ok(index)
}

/// Reads and parses the manifest `desc` names, refusing one over
/// `limits.max_manifest_size`.
pub async fn read_manifest<P: Provider + ?Sized>(
    provider: &P,
    desc: &Descriptor,
    limits: &Limits,
) -> Result<ImageManifest> {
    let bytes = read_blob(provider, desc, limits.max_manifest_size).await?;
    parse_manifest(desc, &bytes)
}

/// Reads and parses the index `desc` names, refusing one over `limits.max_manifest_size`.
pub async fn read_index<P: Provider + ?Sized>(
    provider: &P,
    desc: &Descriptor,
    limits: &Limits,
) -> Result<ImageIndex> {
    let bytes = read_blob(provider, desc, limits.max_manifest_size).await?;
    parse_index(desc, &bytes)
}

/// The descriptors directly below `desc`: a manifest's config then layers, an index's
/// manifests; nothing for layers, configs and unknown media types. Reads within the
/// default [`Limits`]; see [`children_of_with`].
pub async fn children_of<P: Provider + ?Sized>(
    provider: &P,
    desc: &Descriptor,
) -> Result<Vec<Descriptor>> {
    children_of_with(provider, desc, &Limits::DEFAULT).await
}

/// [`children_of`] within `limits`.
pub async fn children_of_with<P: Provider + ?Sized>(
    provider: &P,
    desc: &Descriptor,
    limits: &Limits,
) -> Result<Vec<Descriptor>> {
    match media_types::kind(desc.media_type()) {
        MediaKind::Manifest => {
            let manifest = read_manifest(provider, desc, limits).await?;
            let mut out = Vec::with_capacity(manifest.layers().len() + 1);
            out.push(manifest.config().clone());
            out.extend(manifest.layers().iter().cloned());
            Ok(out)
        }
        MediaKind::Index => Ok(read_index(provider, desc, limits)
            .await?
            .manifests()
            .clone()),
        MediaKind::Schema1Manifest => Err(invalid(
            desc,
            format!(
                "Docker schema1 manifests ({}) are not supported",
                desc.media_type()
            ),
        )),
        _ => Ok(Vec::new()),
    }
}

/// The handler returned by [`children`].
#[derive(Debug, Clone)]
pub struct ChildrenHandler<P: ?Sized> {
    limits: Limits,
    provider: Arc<P>,
}

/// A handler that returns the children of manifests and indexes read from `provider`
/// (containerd's `ChildrenHandler`): combine it with a fetch handler for a pull, or use it
/// alone to walk an image already stored. It reads within the default [`Limits`]; give it
/// the ones the resolver has with [`ChildrenHandler::with_limits`].
pub fn children<P: Provider + ?Sized>(provider: Arc<P>) -> ChildrenHandler<P> {
    ChildrenHandler {
        limits: Limits::DEFAULT,
        provider,
    }
}

impl<P: ?Sized> ChildrenHandler<P> {
    /// Reads manifests and indexes within `limits` (the same value a resolver was given,
    /// so a manifest it fetched is never refused here, nor a bigger one read).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

#[async_trait]
impl<P: Provider + ?Sized> Handler for ChildrenHandler<P> {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        children_of_with(&*self.provider, desc, &self.limits).await
    }
}
