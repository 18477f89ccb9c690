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
use dist::remotes::{Fetcher, fetch_handler, ref_key, source_label_handler};
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
    /// The resolved registry name: each blob fetched is labelled with its repository, so
    /// a push to the same registry can mount it (`None` for a layout on disk).
    pub source: Option<String>,
}

impl FetchJob {
    /// Fetches `target` and, below it, the manifest for the platform with its config and
    /// layers. Blobs already in the store are not transferred again; partial ones resume.
    pub async fn run(&self, target: &Descriptor) -> CmdResult {
        self.run_with(target, false).await
    }

    /// Fetches `target` and everything below it, every platform of an index (`copy`).
    pub async fn run_all(&self, target: &Descriptor) -> CmdResult {
        self.run_with(target, true).await
    }

    /// The pull chain: attach to the lease, fetch, record the source repository, then
    /// the children (each manifest and index labelled with what it references, before
    /// the platform filter, as containerd's pull does: an index references every
    /// manifest it lists).
    async fn run_with(&self, target: &Descriptor, all_platforms: bool) -> CmdResult {
        let counting: Arc<dyn Fetcher> = Arc::new(CountingFetcher {
            inner: Arc::clone(&self.fetcher),
            progress: Arc::clone(&self.progress),
        });
        let store = Arc::new(self.store.clone());
        let fetch = TrackedFetch {
            fetch: fetch_handler(store.clone(), counting),
            progress: Arc::clone(&self.progress),
        };
        let labelled =
            set_children_labels(store.clone(), children(store.clone()).with_limits(LIMITS));
        let source = match &self.source {
            Some(name) => Some(source_label_handler(store, name)?),
            None => None,
        };
        let mut handler = Handlers::new();
        if let Some(lease) = &self.lease {
            handler = handler.push(attach_to_lease(Arc::clone(lease), ref_key));
        }
        let mut handler = handler.push(fetch);
        if let Some(source) = source {
            handler = handler.push(source);
        }
        let handler = if all_platforms {
            handler.push(labelled)
        } else {
            handler.push(limit_manifests(
                filter_platforms(labelled, self.matcher.clone()),
                self.matcher.clone(),
                1,
            ))
        };
        Ok(dispatch(&handler, std::slice::from_ref(target), self.concurrency).await?)
    }
}
