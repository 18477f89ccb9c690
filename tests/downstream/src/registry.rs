//! [`MemoryRegistry`]: tags and blobs in maps, served as a `Resolver` and a `Fetcher`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use dist::remotes::{ByteStream, Error, Fetcher, Resolver, Result};
use oci_spec::image::{Descriptor, Digest};

use crate::digest_of;

/// A registry in memory: references to root descriptors, and the blobs below them.
#[derive(Debug, Clone, Default)]
pub struct MemoryRegistry {
    tags: HashMap<String, Descriptor>,
    blobs: Arc<HashMap<Digest, Bytes>>,
}

impl MemoryRegistry {
    /// A registry serving `blobs`, with `tags` naming the roots.
    pub fn new(tags: HashMap<String, Descriptor>, blobs: HashMap<Digest, Bytes>) -> Self {
        MemoryRegistry {
            tags,
            blobs: Arc::new(blobs),
        }
    }
}

#[async_trait]
impl Resolver for MemoryRegistry {
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)> {
        match self.tags.get(reference) {
            Some(desc) => Ok((reference.to_owned(), desc.clone())),
            None => Err(Error::NotFound {
                what: reference.to_owned(),
            }),
        }
    }

    async fn fetcher(&self, _name: &str) -> Result<Box<dyn Fetcher>> {
        Ok(Box::new(MemoryFetcher(Arc::clone(&self.blobs))))
    }
}

/// Serves any descriptor whose blob it holds, after checking size and digest as the
/// `Fetcher` contract requires: wrong bytes are never served.
struct MemoryFetcher(Arc<HashMap<Digest, Bytes>>);

#[async_trait]
impl Fetcher for MemoryFetcher {
    async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> Result<ByteStream> {
        let what = desc.digest().to_string();
        let Some(data) = self.0.get(desc.digest()) else {
            return Err(Error::NotFound { what });
        };
        let size = data.len() as u64;
        if size != desc.size() {
            let reason = format!("{size} bytes stored, descriptor says {}", desc.size());
            return Err(Error::Mismatch { what, reason });
        }
        if digest_of(desc.digest().algorithm(), data).as_ref() != Some(desc.digest()) {
            let reason = "stored bytes do not hash to the digest".to_owned();
            return Err(Error::Mismatch { what, reason });
        }
        let Some(start) = usize::try_from(offset).ok().filter(|&n| n <= data.len()) else {
            let reason = format!("offset {offset} is past the size {size}");
            return Err(Error::Mismatch { what, reason });
        };
        Ok(Box::pin(futures::stream::iter([Ok(data.slice(start..))])))
    }
}
