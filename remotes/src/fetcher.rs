//! The [`Fetcher`] trait: content by descriptor, as a verified byte stream.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use oci_spec::image::Descriptor;

use crate::Result;

/// A stream of content bytes; it ends with an `Err` (never silently short) when the content
/// does not match its descriptor or the transfer fails for good.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Something that happened to one transfer that the bytes themselves do not show: a
/// progress display uses it to say that a download is stalled or being retried.
///
/// Events are advisory: the stream still ends in an error when the retry budget runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// No response headers, or no body byte, arrived for `waited`; the attempt is
    /// abandoned. `stalls` counts the stalled attempts of this descriptor so far, out of
    /// `budget` (the fetch fails when they are equal).
    Stalled {
        /// The registry host.
        host: String,
        /// How many bytes of the content had arrived (from offset 0).
        offset: u64,
        /// The timeout that fired.
        waited: Duration,
        /// Stalled attempts so far.
        stalls: u32,
        /// Stalled attempts allowed.
        budget: u32,
    },
    /// The transfer is tried again from `offset` after `delay`, because of `reason` (a
    /// one-line, elided description of the last failure).
    Retrying {
        /// The registry host.
        host: String,
        /// Where the next attempt starts.
        offset: u64,
        /// The wait before the next attempt.
        delay: Duration,
        /// Why.
        reason: String,
    },
}

/// Receives [`FetchEvent`]s for one fetch (see [`Fetcher::fetch_at_observed`]).
///
/// Called on the fetching task: keep it quick and never block.
pub trait FetchObserver: Send + Sync {
    /// One event happened.
    fn on_event(&self, event: &FetchEvent);
}

/// How [`Fetcher::fetch_at_with`] fetches.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct FetchOptions {
    /// Told when the transfer stalls or is retried.
    pub observer: Option<Arc<dyn FetchObserver>>,
    /// The caller checks the digest itself, so the stream need not hash what it delivers.
    /// [`FetchHandler`](crate::FetchHandler) sets it: its ingester hashes every byte and
    /// refuses to commit a mismatch, and the second hash was 3.5% of a pull's CPU. The
    /// stream still ends in an error on more or fewer bytes than the descriptor's size.
    pub caller_checks_digest: bool,
}

impl FetchOptions {
    /// Sets the observer.
    pub fn observer(mut self, observer: Arc<dyn FetchObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Says the caller checks the digest (see [`FetchOptions::caller_checks_digest`]).
    pub fn caller_checks_digest(mut self) -> Self {
        self.caller_checks_digest = true;
        self
    }
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("observer", &self.observer.is_some())
            .field("caller_checks_digest", &self.caller_checks_digest)
            .finish()
    }
}

/// Fetches content named by a descriptor from one remote repository.
///
/// A fetcher is obtained from [`Resolver::fetcher`](crate::Resolver::fetcher) for the name
/// that [`Resolver::resolve`](crate::Resolver::resolve) returned.
///
/// Implementations must check what they stream: [`fetch`](Fetcher::fetch) ends in an error
/// when the bytes' size or digest differ from the descriptor's, and
/// [`fetch_at`](Fetcher::fetch_at) at least checks that exactly `size - offset` bytes arrive
/// (the caller, typically a content-store writer resuming an ingest, holds the prefix and
/// verifies the digest on commit).
///
/// A fetcher that serves from memory, handy in tests. A map can hold the wrong bytes as
/// easily as a registry can send them, so it checks the whole blob against the descriptor
/// before serving any of it:
///
/// ```
/// use std::collections::HashMap;
///
/// use async_trait::async_trait;
/// use bytes::Bytes;
/// use dist_remotes::{ByteStream, Error, ErrorKind, Fetcher, Result};
/// use futures::TryStreamExt;
/// use oci_spec::image::{Descriptor, Digest, MediaType};
///
/// struct MemoryFetcher(HashMap<Digest, Bytes>);
///
/// #[async_trait]
/// impl Fetcher for MemoryFetcher {
///     async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> Result<ByteStream> {
///         let what = desc.digest().to_string();
///         let Some(data) = self.0.get(desc.digest()) else {
///             return Err(Error::NotFound { what });
///         };
///         let size = data.len() as u64;
///         if size != desc.size() {
///             let reason = format!("{size} bytes stored, descriptor says {}", desc.size());
///             return Err(Error::Mismatch { what, reason });
///         }
///         // Any algorithm dist-rs supports (sha256, sha384, sha512).
///         let mut hasher = dist_content::Digester::for_digest(desc.digest())?;
///         hasher.update(data);
///         let actual = hasher.finish();
///         if actual != *desc.digest() {
///             let reason = format!("stored bytes hash to {actual}");
///             return Err(Error::Mismatch { what, reason });
///         }
///         let Some(start) = usize::try_from(offset).ok().filter(|&n| n <= data.len()) else {
///             let reason = format!("offset {offset} is past the size {size}");
///             return Err(Error::Mismatch { what, reason });
///         };
///         Ok(Box::pin(futures::stream::iter([Ok(data.slice(start..))])))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// let digest: Digest =
///     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".parse()?;
/// let fetcher = MemoryFetcher(HashMap::from([(digest.clone(), Bytes::from_static(b"hello"))]));
/// let desc = Descriptor::new(MediaType::ImageLayer, 5, digest.clone());
///
/// let chunks: Vec<Bytes> = fetcher.fetch(&desc).await?.try_collect().await?;
/// assert_eq!(chunks.concat(), b"hello");
/// let tail: Vec<Bytes> = fetcher.fetch_at(&desc, 3).await?.try_collect().await?;
/// assert_eq!(tail.concat(), b"lo");
///
/// // Bytes that do not match their descriptor are never served.
/// let corrupt = MemoryFetcher(HashMap::from([(digest, Bytes::from_static(b"jello"))]));
/// let err = corrupt.fetch(&desc).await.err().ok_or("served corrupt bytes")?;
/// assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
/// let short = Descriptor::new(MediaType::ImageLayer, 4, desc.digest().clone());
/// let err = fetcher.fetch(&short).await.err().ok_or("served the wrong size")?;
/// assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Fetcher: Send + Sync {
    /// Streams the whole content of `desc`.
    async fn fetch(&self, desc: &Descriptor) -> Result<ByteStream> {
        self.fetch_at(desc, 0).await
    }

    /// Streams the content of `desc` from byte `offset` on, so that a partial download
    /// resumes instead of restarting.
    async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> Result<ByteStream>;

    /// [`fetch_at`](Fetcher::fetch_at), telling `observer` when the transfer stalls or is
    /// retried. The default ignores the observer: fetchers that never retry have nothing
    /// to tell.
    async fn fetch_at_observed(
        &self,
        desc: &Descriptor,
        offset: u64,
        observer: Arc<dyn FetchObserver>,
    ) -> Result<ByteStream> {
        let _ = observer;
        self.fetch_at(desc, offset).await
    }

    /// [`fetch_at`](Fetcher::fetch_at) with `options`. The default passes the observer to
    /// [`fetch_at_observed`](Fetcher::fetch_at_observed) and verifies the digest anyway:
    /// skipping the hash for a caller that checks it is an optimisation a fetcher may
    /// make, never one it must.
    async fn fetch_at_with(
        &self,
        desc: &Descriptor,
        offset: u64,
        options: FetchOptions,
    ) -> Result<ByteStream> {
        match options.observer {
            Some(observer) => self.fetch_at_observed(desc, offset, observer).await,
            None => self.fetch_at(desc, offset).await,
        }
    }
}
