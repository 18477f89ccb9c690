//! What the progress display learns from the fetch side of `fetch` and `pull`: the bytes
//! each download delivers, its stalls and retries, and whether it was committed. (Readers
//! that follow downloads need none of this: they use `LocalStore::follow`.)

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use dist::images::Handler;
use dist::remotes::{ByteStream, FetchEvent, FetchObserver, FetchOptions, Fetcher, ref_key};
use futures::StreamExt;
use oci_spec::image::Descriptor;

use indicatif::DecimalBytes;

use crate::progress::Progress;

/// Counts the bytes every fetched stream delivers, for the progress display.
pub struct CountingFetcher {
    pub inner: Arc<dyn Fetcher>,
    pub progress: Arc<Progress>,
}

#[async_trait]
impl Fetcher for CountingFetcher {
    async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> dist::remotes::Result<ByteStream> {
        self.fetch_at_with(desc, offset, FetchOptions::default())
            .await
    }

    /// Passes the options on (the fetch handler's "caller checks the digest" included),
    /// with the progress display as the observer.
    async fn fetch_at_with(
        &self,
        desc: &Descriptor,
        offset: u64,
        options: FetchOptions,
    ) -> dist::remotes::Result<ByteStream> {
        let key = ref_key(desc);
        let size = desc.size();
        self.progress.start(&key, offset, size);
        let observer = Arc::new(ShowInterruptions {
            key: key.clone(),
            size,
            progress: Arc::clone(&self.progress),
        });
        let options = options.observer(observer);
        let stream = self.inner.fetch_at_with(desc, offset, options).await?;
        let progress = Arc::clone(&self.progress);
        Ok(Box::pin(stream.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                progress.advance(&key, bytes.len() as u64, size);
            }
        })))
    }
}

/// Shows a download's stalls and retries on its progress line.
struct ShowInterruptions {
    key: String,
    size: u64,
    progress: Arc<Progress>,
}

impl FetchObserver for ShowInterruptions {
    fn on_event(&self, event: &FetchEvent) {
        let (state, what) = match event {
            FetchEvent::Stalled {
                host,
                offset,
                waited,
                stalls,
                budget,
            } => (
                "stalled",
                format!(
                    "{host}: no data for {} at {}, stall {stalls} of {budget}",
                    humantime::format_duration(*waited),
                    DecimalBytes(*offset)
                ),
            ),
            FetchEvent::Retrying {
                offset,
                delay,
                reason,
                ..
            } => (
                "retrying",
                format!(
                    "from {} in {}: {reason}",
                    DecimalBytes(*offset),
                    humantime::format_duration(*delay)
                ),
            ),
            _ => return,
        };
        self.progress
            .interrupted(&self.key, state, &what, self.size);
    }
}

/// Fetches each descriptor with `fetch` and shows its fate on the progress display.
pub struct TrackedFetch<H> {
    pub fetch: H,
    pub progress: Arc<Progress>,
}

#[async_trait]
impl<H: Handler> Handler for TrackedFetch<H> {
    async fn handle(&self, desc: &Descriptor) -> dist::images::Result<Vec<Descriptor>> {
        let key = ref_key(desc);
        let started = Instant::now();
        let result = self.fetch.handle(desc).await;
        match &result {
            Ok(_) => self.progress.done(&key, desc.size(), started.elapsed()),
            Err(_) => self.progress.state(&key, "failed", desc.size()),
        }
        result
    }
}
