//! The [`Resolver`] trait: turn a reference into a name and a root descriptor.

use async_trait::async_trait;
use oci_spec::image::Descriptor;

use crate::{Error, Fetcher, Pusher, Result};

/// Resolves references against a remote and hands out fetchers for the resolved names.
///
/// This is containerd's `remotes.Resolver` shape: resolution yields the canonical name to
/// fetch from (for the Docker registry, the fully-qualified reference) and the descriptor of
/// the root object (a manifest or an index) with its digest, size and media type taken from
/// the registry.
///
/// [`DockerResolver`](crate::DockerResolver) talks to registries. A resolver over a fixed
/// set of images, for tests and air-gapped tools, maps references to root descriptors and
/// hands out a [`Fetcher`] over the blobs:
///
/// ```
/// # use std::collections::HashMap;
/// # use std::sync::Arc;
/// # use async_trait::async_trait;
/// # use bytes::Bytes;
/// # use dist_remotes::{ByteStream, Error, ErrorKind, Fetcher, Resolver, Result};
/// # use futures::TryStreamExt;
/// # use oci_spec::image::{Descriptor, Digest, MediaType};
/// struct MemoryResolver {
///     /// `host/repo:tag` -> the manifest or index it names.
///     tags: HashMap<String, Descriptor>,
///     blobs: Arc<HashMap<Digest, Bytes>>,
/// }
///
/// #[async_trait]
/// impl Resolver for MemoryResolver {
///     async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)> {
///         let what = || reference.to_owned();
///         let desc = self.tags.get(reference).ok_or_else(|| Error::NotFound { what: what() })?;
///         Ok((reference.to_owned(), desc.clone()))
///     }
///
///     async fn fetcher(&self, _name: &str) -> Result<Box<dyn Fetcher>> {
///         // One map serves every repository here; a registry scopes blobs per repository.
///         Ok(Box::new(MemoryFetcher(Arc::clone(&self.blobs))))
///     }
/// }
///
/// // The Fetcher example's fetcher (which checks size and digest), over a shared map.
/// struct MemoryFetcher(Arc<HashMap<Digest, Bytes>>);
/// # #[async_trait]
/// # impl Fetcher for MemoryFetcher {
/// #     async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> Result<ByteStream> {
/// #         let what = desc.digest().to_string();
/// #         let Some(data) = self.0.get(desc.digest()) else {
/// #             return Err(Error::NotFound { what });
/// #         };
/// #         let size = data.len() as u64;
/// #         if size != desc.size() {
/// #             let reason = format!("{size} bytes stored, descriptor says {}", desc.size());
/// #             return Err(Error::Mismatch { what, reason });
/// #         }
/// #         let mut hasher = dist_content::Digester::for_digest(desc.digest())?;
/// #         hasher.update(data);
/// #         let actual = hasher.finish();
/// #         if actual != *desc.digest() {
/// #             let reason = format!("stored bytes hash to {actual}");
/// #             return Err(Error::Mismatch { what, reason });
/// #         }
/// #         let Some(start) = usize::try_from(offset).ok().filter(|&n| n <= data.len()) else {
/// #             let reason = format!("offset {offset} is past the size {size}");
/// #             return Err(Error::Mismatch { what, reason });
/// #         };
/// #         Ok(Box::pin(futures::stream::iter([Ok(data.slice(start..))])))
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let manifest = Bytes::from_static(br#"{"schemaVersion":2}"#);
/// let digest = dist_content::sha256_of(&manifest);
/// let desc = Descriptor::new(MediaType::ImageManifest, manifest.len() as u64, digest.clone());
/// let resolver = MemoryResolver {
///     tags: HashMap::from([("example.com/app:1".to_owned(), desc)]),
///     blobs: Arc::new(HashMap::from([(digest, manifest.clone())])),
/// };
///
/// let (name, root) = resolver.resolve("example.com/app:1").await?;
/// let fetcher = resolver.fetcher(&name).await?;
/// let fetched: Vec<Bytes> = fetcher.fetch(&root).await?.try_collect().await?;
/// assert_eq!(fetched.concat(), manifest);
///
/// let missing = resolver.resolve("example.com/app:2").await.unwrap_err();
/// assert_eq!(missing.kind(), ErrorKind::NotFound);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Resolver: Send + Sync {
    /// Resolves `reference` (`host/repo:tag`, `host/repo@digest` or both) to a name and the
    /// descriptor of the object it points at.
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)>;

    /// A fetcher for content of the repository `name` (as returned by
    /// [`resolve`](Resolver::resolve)).
    async fn fetcher(&self, name: &str) -> Result<Box<dyn Fetcher>>;

    /// A pusher to the repository of `name` (`host/repo[:tag]`); a tag in `name` is what
    /// manifests are pushed under.
    ///
    /// The default refuses with [`Error::Unsupported`] (kind `InvalidArgument`), so
    /// resolvers that only read need not implement it.
    async fn pusher(&self, name: &str) -> Result<Box<dyn Pusher>> {
        Err(Error::Unsupported {
            what: format!("pushing to {}", dist_content::Elided(name)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolver that only implements the two required methods.
    struct ReadOnly;

    #[async_trait]
    impl Resolver for ReadOnly {
        async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)> {
            Err(Error::NotFound {
                what: reference.to_owned(),
            })
        }

        async fn fetcher(&self, name: &str) -> Result<Box<dyn Fetcher>> {
            Err(Error::NotFound {
                what: name.to_owned(),
            })
        }
    }

    #[tokio::test]
    async fn a_resolver_without_push_refuses_with_an_unsupported_error() {
        let err = match ReadOnly.pusher("example.com/app:1").await {
            Ok(_) => panic!("a read-only resolver handed out a pusher"),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("example.com/app:1"), "{err}");
    }
}
