//! Fetching an image's content into the store: the handler chain of containerd's pull
//! (fetch each descriptor, then read its children, keeping only this platform's manifest),
//! run by `dispatch` with a concurrency limit. Used by `fetch` and `pull`.

use std::sync::Arc;

use dist::content::LocalStore;
use dist::images::{
    Handlers, Limits, PlatformMatcher, children, dispatch, filter_platforms, limit_manifests,
};
use dist::remotes::{Fetcher, fetch_handler, source_label_handler};
use oci_spec::image::Descriptor;

use crate::CmdResult;
use crate::progress::Progress;
use crate::tracker::{CountingFetcher, TrackedFetch};

/// The manifest and config size limits, configured once for every reader: the resolver
/// (`registry::resolver`), the children handler below, and the images read for unpacking.
pub const LIMITS: Limits = Limits::DEFAULT;

/// Everything a fetch needs.
pub struct FetchJob {
    pub store: LocalStore,
    pub fetcher: Arc<dyn Fetcher>,
    pub matcher: PlatformMatcher,
    pub concurrency: usize,
    pub progress: Arc<Progress>,
    /// The resolved name: each blob fetched is labelled with its repository, so a push
    /// to the same registry can mount it.
    pub source: String,
}

impl FetchJob {
    /// Fetches `target` and, below it, the manifest for the platform with its config and
    /// layers. Blobs already in the store are not transferred again; partial ones resume.
    pub async fn run(&self, target: &Descriptor) -> CmdResult {
        let counting: Arc<dyn Fetcher> = Arc::new(CountingFetcher {
            inner: Arc::clone(&self.fetcher),
            progress: Arc::clone(&self.progress),
        });
        let store = Arc::new(self.store.clone());
        let fetch = TrackedFetch {
            fetch: fetch_handler(store.clone(), counting),
            progress: Arc::clone(&self.progress),
        };
        let source = source_label_handler(store.clone(), &self.source)?;
        let tree = limit_manifests(
            filter_platforms(children(store).with_limits(LIMITS), self.matcher.clone()),
            self.matcher.clone(),
            1,
        );
        let handler = Handlers::new().push(fetch).push(source).push(tree);
        Ok(dispatch(&handler, std::slice::from_ref(target), self.concurrency).await?)
    }
}
