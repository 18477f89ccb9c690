//! Fetching an image's content into the store: the handler chain of containerd's pull
//! (fetch each descriptor, then read its children, keeping only this platform's manifest),
//! run by `dispatch` with a concurrency limit. Used by `fetch` and `pull`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use dist::content::LocalStore;
use dist::images::{
    Handler, Handlers, Image, ImageStore, PlatformMatcher, children, dispatch, filter_platforms,
    limit_manifests,
};
use dist::remotes::{ByteStream, FetchEvent, FetchObserver, Fetcher, fetch_handler, ref_key};
use futures::StreamExt;
use oci_spec::image::Descriptor;

use crate::CmdResult;
use crate::progress::{Progress, human_size};
use crate::tracker::Tracker;

/// Counts the bytes every fetched stream delivers, for the progress display and for the
/// readers that follow downloads.
struct CountingFetcher {
    inner: Arc<dyn Fetcher>,
    progress: Arc<Progress>,
    tracker: Arc<Tracker>,
}

#[async_trait]
impl Fetcher for CountingFetcher {
    async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> dist::remotes::Result<ByteStream> {
        let key = ref_key(desc);
        let size = desc.size();
        self.progress.start(&key, offset, size);
        let observer = Arc::new(ShowInterruptions {
            key: key.clone(),
            size,
            progress: Arc::clone(&self.progress),
        });
        let stream = self.inner.fetch_at_observed(desc, offset, observer).await?;
        let progress = Arc::clone(&self.progress);
        let tracker = Arc::clone(&self.tracker);
        Ok(Box::pin(stream.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                progress.advance(&key, bytes.len() as u64, size);
                tracker.progressed();
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
                    human_size(*offset)
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
                    human_size(*offset),
                    humantime::format_duration(*delay)
                ),
            ),
            _ => return,
        };
        self.progress
            .interrupted(&self.key, state, &what, self.size);
    }
}

/// Fetches each descriptor into the store and reports its fate to the progress display
/// and the tracker.
struct TrackedFetch<H> {
    fetch: H,
    progress: Arc<Progress>,
    tracker: Arc<Tracker>,
}

#[async_trait]
impl<H: Handler> Handler for TrackedFetch<H> {
    async fn handle(&self, desc: &Descriptor) -> dist::images::Result<Vec<Descriptor>> {
        let key = ref_key(desc);
        let started = Instant::now();
        match self.fetch.handle(desc).await {
            Ok(children) => {
                self.tracker.committed(desc.digest());
                self.progress.done(&key, desc.size(), started.elapsed());
                Ok(children)
            }
            Err(e) => {
                self.tracker.failed(desc.digest(), e.to_string());
                self.progress.state(&key, "failed", desc.size());
                Err(e)
            }
        }
    }
}

/// Everything a fetch needs.
pub struct FetchJob {
    pub store: LocalStore,
    pub fetcher: Arc<dyn Fetcher>,
    pub matcher: PlatformMatcher,
    pub concurrency: usize,
    pub progress: Arc<Progress>,
    pub tracker: Arc<Tracker>,
}

impl FetchJob {
    /// Fetches `target` and, below it, the manifest for the platform with its config and
    /// layers. Blobs already in the store are not transferred again.
    pub async fn run(&self, target: &Descriptor) -> CmdResult {
        let counting: Arc<dyn Fetcher> = Arc::new(CountingFetcher {
            inner: Arc::clone(&self.fetcher),
            progress: Arc::clone(&self.progress),
            tracker: Arc::clone(&self.tracker),
        });
        let store = Arc::new(self.store.clone());
        let fetch = TrackedFetch {
            fetch: fetch_handler(store.clone(), counting),
            progress: Arc::clone(&self.progress),
            tracker: Arc::clone(&self.tracker),
        };
        let tree = limit_manifests(
            filter_platforms(children(store), self.matcher.clone()),
            self.matcher.clone(),
            1,
        );
        let handler = Handlers::new().push(fetch).push(tree);
        Ok(dispatch(&handler, std::slice::from_ref(target), self.concurrency).await?)
    }
}

/// Records `name -> target` in the image store, creating or replacing the record.
pub async fn record_image(images: &dyn ImageStore, name: &str, target: &Descriptor) -> CmdResult {
    let image = Image::new(name, target.clone());
    match images.create(image.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == dist::images::ErrorKind::AlreadyExists => {
            images.update(image).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
