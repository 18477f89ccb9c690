//! The [`Resolver`] trait: turn a reference into a name and a root descriptor.

use async_trait::async_trait;
use oci_spec::image::Descriptor;

use crate::{Fetcher, Result};

/// Resolves references against a remote and hands out fetchers for the resolved names.
///
/// This is containerd's `remotes.Resolver` shape: resolution yields the canonical name to
/// fetch from (for the Docker registry, the fully-qualified reference) and the descriptor of
/// the root object (a manifest or an index) with its digest, size and media type taken from
/// the registry.
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Resolves `reference` (`host/repo:tag`, `host/repo@digest` or both) to a name and the
    /// descriptor of the object it points at.
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)>;

    /// A fetcher for content of the repository `name` (as returned by
    /// [`resolve`](Resolver::resolve)).
    async fn fetcher(&self, name: &str) -> Result<Box<dyn Fetcher>>;
}
