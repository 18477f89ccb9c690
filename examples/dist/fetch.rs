//! Fetching an image's content into the store: the handler chain of containerd's pull
//! (fetch each descriptor, then read its children, keeping only this platform's manifest),
//! run by `dispatch` with a concurrency limit. Used by `fetch` and `pull`.

use std::sync::Arc;

use dist::content::Lease;
use dist::content::LocalStore;
use dist::images::{
    Handlers, Limits, PlatformMatcher, attach_to_lease, children, dispatch, filter_platforms,
    limit_manifests, set_children_labels,
};
use dist::remotes::{Fetcher, fetch_handler, ref_key};
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
    /// The lease every fetched blob (and its ingest) is attached to before it is written.
    pub lease: Option<Arc<Lease>>,
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
        // Labels go on before the platform filter, as containerd's pull does: an index
        // references every manifest it lists.
        let labelled = set_children_labels(store.clone(), children(store).with_limits(LIMITS));
        let tree = limit_manifests(
            filter_platforms(labelled, self.matcher.clone()),
            self.matcher.clone(),
            1,
        );
        let mut handler = Handlers::new();
        if let Some(lease) = &self.lease {
            handler = handler.push(attach_to_lease(Arc::clone(lease), ref_key));
        }
        let handler = handler.push(fetch).push(tree);
        Ok(dispatch(&handler, std::slice::from_ref(target), self.concurrency).await?)
    }
}
