//! The push flow: [`push_handler`] (one descriptor to a [`Pusher`]) and [`push`] (an
//! image graph, children before parents), built on the images crate's [`dispatch`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dist_content::{Manager, Provider};
use dist_images::media_types::{self, MediaKind};
use dist_images::{Handler, Limits, Matcher, PlatformMatcher, children_of_with, dispatch};
use oci_spec::image::{Descriptor, Digest};

use crate::{
    DISTRIBUTION_SOURCE_PREFIX, Error, ErrorKind, PushOutcome, Pusher, Result, SourceLabelHandler,
};

/// What happened to one descriptor of a push, as told to a [`PushObserver`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PushEvent {
    /// The push of `desc` starts.
    Started {
        /// The descriptor (with the mount candidates it was given, if any).
        desc: Descriptor,
    },
    /// `desc` is at the remote.
    Done {
        /// The descriptor.
        desc: Descriptor,
        /// Uploaded, already there, or mounted.
        outcome: PushOutcome,
        /// Its size when uploaded (an upload resumed from a registry's offset sent less),
        /// else 0.
        bytes: u64,
        /// How long its push took.
        elapsed: Duration,
    },
    /// The push of `desc` failed (the error is what [`push`] returns).
    Failed {
        /// The descriptor.
        desc: Descriptor,
    },
}

/// Learns the fate of every descriptor a [`PushHandler`] pushes: a progress display
/// shows pushed, mounted and skipped blobs from it.
pub trait PushObserver: Send + Sync {
    /// Called when a descriptor's push starts, ends or fails.
    fn on_event(&self, event: &PushEvent);
}

/// The handler returned by [`push_handler`].
pub struct PushHandler {
    pusher: Arc<dyn Pusher>,
    provider: Arc<dyn Provider>,
    sources: Option<Arc<dyn Manager>>,
    observer: Option<Arc<dyn PushObserver>>,
    destination: Option<Arc<SourceLabelHandler>>,
}

impl std::fmt::Debug for PushHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushHandler")
            .field("source_labels", &self.sources.is_some())
            .field("observer", &self.observer.is_some())
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

/// A handler that pushes each descriptor it is given with `pusher`, reading the bytes
/// from `provider`, and returns no children. It does not order anything: [`push`] calls
/// it children first.
pub fn push_handler(pusher: Arc<dyn Pusher>, provider: Arc<dyn Provider>) -> PushHandler {
    PushHandler {
        pusher,
        provider,
        sources: None,
        observer: None,
        destination: None,
    }
}

impl PushHandler {
    /// Before each push, copies the blob's `containerd.io/distribution.source.*` labels
    /// from `manager` into the descriptor's annotations (as containerd's
    /// `annotateDistributionSourceHandler`), where the pusher finds its mount candidates.
    pub fn with_source_labels(mut self, manager: Arc<dyn Manager>) -> Self {
        self.sources = Some(manager);
        self
    }

    /// Tells `observer` when each push starts and how it ended.
    pub fn with_observer(mut self, observer: Arc<dyn PushObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// After each successful push, records the destination on the stored blob with
    /// `labels` (a [`source_label_handler`](crate::source_label_handler) for the name
    /// pushed to), as containerd does after a push: a later push to another repository
    /// of that registry mounts from it. Content the label store does not hold is skipped,
    /// and a label that cannot be written is logged, not an error.
    pub fn with_destination_label(mut self, labels: Arc<SourceLabelHandler>) -> Self {
        self.destination = Some(labels);
        self
    }

    fn tell(&self, event: PushEvent) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }

    /// `desc` with the stored blob's distribution-source labels added as annotations;
    /// unchanged when there is no manager or the blob has none.
    async fn annotated(&self, desc: &Descriptor) -> Result<Descriptor> {
        let Some(manager) = &self.sources else {
            return Ok(desc.clone());
        };
        let info = match manager.info(desc.digest()).await {
            Ok(info) => info,
            // Content the manager does not hold has no labels; the provider may still.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(desc.clone()),
            Err(e) => return Err(e.into()),
        };
        let sources: Vec<(String, String)> = info
            .labels
            .into_iter()
            .filter(|(k, _)| k.starts_with(DISTRIBUTION_SOURCE_PREFIX))
            .collect();
        if sources.is_empty() {
            return Ok(desc.clone());
        }
        let mut desc = desc.clone();
        let mut annotations = desc.annotations().clone().unwrap_or_default();
        annotations.extend(sources);
        desc.set_annotations(Some(annotations));
        Ok(desc)
    }

    /// Pushes `desc`: annotates it, hands it to the pusher, reports the outcome.
    pub async fn push(&self, desc: &Descriptor) -> Result<PushOutcome> {
        let desc = self.annotated(desc).await?;
        self.tell(PushEvent::Started { desc: desc.clone() });
        let started = Instant::now();
        match self.pusher.push(&desc, &*self.provider).await {
            Ok(outcome) => {
                // A hint for later pushes: failing to write it does not fail this one.
                if let Some(labels) = &self.destination
                    && let Err(e) = labels.record(&desc).await
                    && e.kind() != ErrorKind::NotFound
                {
                    tracing::warn!(digest = %desc.digest(), error = %e, "destination label not written");
                }
                let bytes = if outcome == PushOutcome::Pushed {
                    desc.size()
                } else {
                    0
                };
                let elapsed = started.elapsed();
                self.tell(PushEvent::Done {
                    desc,
                    outcome,
                    bytes,
                    elapsed,
                });
                Ok(outcome)
            }
            Err(e) => {
                self.tell(PushEvent::Failed { desc });
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Handler for PushHandler {
    async fn handle(&self, desc: &Descriptor) -> dist_images::Result<Vec<Descriptor>> {
        self.push(desc)
            .await
            .map_err(|e| dist_images::Error::other(e.kind(), e))?;
        Ok(Vec::new())
    }
}

/// Which manifests of an index [`push`] sends.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum PushPlatforms {
    /// The manifests the local store holds (the default): a partly pulled index pushes
    /// what was pulled. An index of which nothing is stored is a `NotFound` error.
    #[default]
    Present,
    /// Every manifest; one missing locally is a `NotFound` error naming it.
    All,
    /// The manifests whose platform the matcher accepts (and those without a platform);
    /// one of them missing locally is a `NotFound` error naming it.
    Matching(PlatformMatcher),
}

/// How [`push`] runs ([`PushOptions::new`], or `default()`, which is the same).
#[derive(Clone)]
#[non_exhaustive]
pub struct PushOptions {
    /// Pushes in flight at once (configs and layers, then manifests); 0 is taken as 1.
    pub concurrency: usize,
    /// Which manifests of an index are pushed.
    pub platforms: PushPlatforms,
    /// Size limits for reading manifests and indexes from the provider.
    pub limits: Limits,
    /// Where the blobs' distribution-source labels are read (mount candidates).
    pub sources: Option<Arc<dyn Manager>>,
    /// Told about every descriptor pushed.
    pub observer: Option<Arc<dyn PushObserver>>,
    /// Records the destination on each pushed blob
    /// ([`PushHandler::with_destination_label`]).
    pub destination: Option<Arc<SourceLabelHandler>>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("concurrency", &self.concurrency)
            .field("platforms", &self.platforms)
            .field("source_labels", &self.sources.is_some())
            .field("observer", &self.observer.is_some())
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions::new()
    }
}

/// Blobs pushed at once by default: as many as a pull fetches.
pub const DEFAULT_PUSH_CONCURRENCY: usize = 3;

impl PushOptions {
    /// [`DEFAULT_PUSH_CONCURRENCY`], the platforms the store holds, default limits, no
    /// source labels, no observer.
    pub fn new() -> Self {
        PushOptions {
            concurrency: DEFAULT_PUSH_CONCURRENCY,
            platforms: PushPlatforms::default(),
            limits: Limits::default(),
            sources: None,
            observer: None,
            destination: None,
        }
    }

    /// Sets how many pushes are in flight at once.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets which manifests of an index are pushed.
    pub fn with_platforms(mut self, platforms: PushPlatforms) -> Self {
        self.platforms = platforms;
        self
    }

    /// Sets the limits for reading manifests and indexes.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Reads mount candidates from the blobs' labels in `manager`
    /// ([`PushHandler::with_source_labels`]).
    pub fn with_source_labels(mut self, manager: Arc<dyn Manager>) -> Self {
        self.sources = Some(manager);
        self
    }

    /// Tells `observer` about every push.
    pub fn with_observer(mut self, observer: Arc<dyn PushObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Records the destination on each pushed blob
    /// ([`PushHandler::with_destination_label`]).
    pub fn with_destination_label(mut self, labels: Arc<SourceLabelHandler>) -> Self {
        self.destination = Some(labels);
        self
    }
}

/// What a walk of the local graph found, in the order it must be pushed.
#[derive(Default)]
struct Plan {
    /// Configs, layers and other leaves.
    blobs: Vec<Descriptor>,
    /// Image manifests.
    manifests: Vec<Descriptor>,
    /// Indexes with the digests of the children kept, for ordering them innermost first.
    indexes: HashMap<Digest, (Descriptor, Vec<Digest>)>,
}

/// The handler that builds the [`Plan`]: it checks each descriptor is stored, reads the
/// children of manifests and indexes, and chooses an index's platforms.
struct Planner<'a> {
    provider: &'a dyn Provider,
    opts: &'a PushOptions,
    plan: Mutex<Plan>,
}

impl Planner<'_> {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the provider holds `desc` (opening it, as any provider can).
    async fn stored(&self, desc: &Descriptor) -> Result<bool> {
        match self.provider.reader_at(desc).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn require(&self, desc: &Descriptor) -> Result<()> {
        if self.stored(desc).await? {
            Ok(())
        } else {
            Err(missing(desc))
        }
    }

    /// The index's children to push, by the platform choice.
    async fn select(&self, index: &Descriptor, all: Vec<Descriptor>) -> Result<Vec<Descriptor>> {
        let mut kept = Vec::with_capacity(all.len());
        match &self.opts.platforms {
            PushPlatforms::All => kept = all,
            PushPlatforms::Matching(m) => kept.extend(
                all.into_iter()
                    .filter(|c| c.platform().as_ref().is_none_or(|p| m.matches(p))),
            ),
            PushPlatforms::Present => {
                for child in all {
                    if self.stored(&child).await? {
                        kept.push(child);
                    }
                }
            }
        }
        if kept.is_empty() {
            return Err(Error::NotFound {
                what: format!(
                    "index {}: none of its manifests {} locally",
                    index.digest(),
                    match self.opts.platforms {
                        PushPlatforms::Present => "is stored",
                        _ => "matches the requested platforms",
                    }
                ),
            });
        }
        Ok(kept)
    }

    async fn visit(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        self.require(desc).await?;
        let kind = media_types::kind(desc.media_type());
        match kind {
            MediaKind::Manifest | MediaKind::Index => {
                let children = children_of_with(self.provider, desc, &self.opts.limits)
                    .await
                    .map_err(Error::from_images)?;
                if kind == MediaKind::Manifest {
                    self.plan().manifests.push(desc.clone());
                    return Ok(children);
                }
                let children = self.select(desc, children).await?;
                let digests = children.iter().map(|c| c.digest().clone()).collect();
                self.plan()
                    .indexes
                    .insert(desc.digest().clone(), (desc.clone(), digests));
                Ok(children)
            }
            _ => {
                self.plan().blobs.push(desc.clone());
                Ok(Vec::new())
            }
        }
    }
}

#[async_trait]
impl Handler for Planner<'_> {
    async fn handle(&self, desc: &Descriptor) -> dist_images::Result<Vec<Descriptor>> {
        self.visit(desc)
            .await
            .map_err(|e| dist_images::Error::other(e.kind(), e))
    }
}

/// The `NotFound` error for a descriptor the push needs that the store lacks.
fn missing(desc: &Descriptor) -> Error {
    Error::NotFound {
        what: format!(
            "{} ({}) is needed for the push but not stored locally",
            desc.digest(),
            desc.media_type()
        ),
    }
}

/// Indexes in push order: each after the indexes it contains (a post-order walk from the
/// root); indexes the root does not reach (none, after planning) come last.
fn index_order(
    root: &Descriptor,
    indexes: &HashMap<Digest, (Descriptor, Vec<Digest>)>,
) -> Vec<Descriptor> {
    let mut order = Vec::with_capacity(indexes.len());
    let mut done = HashSet::new();
    // (digest, children expanded?)
    let mut stack = vec![(root.digest().clone(), false)];
    while let Some((digest, expanded)) = stack.pop() {
        let Some((desc, children)) = indexes.get(&digest) else {
            continue;
        };
        if expanded {
            if done.insert(digest) {
                order.push(desc.clone());
            }
            continue;
        }
        if done.contains(&digest) {
            continue;
        }
        stack.push((digest, true));
        for child in children.iter().rev() {
            if indexes.contains_key(child) && !done.contains(child) {
                stack.push((child.clone(), false));
            }
        }
    }
    order
}

/// Pushes the image `root` (a manifest or an index) and everything below it from
/// `provider` with `pusher`, children before parents, as a registry requires:
///
/// 1. the graph is walked locally first ([`dispatch`]): every needed descriptor must be
///    stored (else a `NotFound` error naming its digest, before anything is sent), and
///    an index's manifests are chosen by [`PushOptions::platforms`];
/// 2. configs and layers are pushed, up to [`PushOptions::concurrency`] at once;
/// 3. then the image manifests, as many at once;
/// 4. then the indexes, one at a time, innermost first, the root last.
///
/// The first error stops the push and is returned; what was pushed stays pushed, and a
/// push run again skips it.
pub async fn push(
    root: &Descriptor,
    provider: Arc<dyn Provider>,
    pusher: Arc<dyn Pusher>,
    opts: &PushOptions,
) -> Result<()> {
    let limit = opts.concurrency.max(1);
    let planner = Planner {
        provider: &*provider,
        opts,
        plan: Mutex::new(Plan::default()),
    };
    dispatch(&planner, std::slice::from_ref(root), limit)
        .await
        .map_err(Error::from_images)?;
    let plan = planner
        .plan
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);

    let mut handler = push_handler(pusher, provider);
    if let Some(m) = &opts.sources {
        handler = handler.with_source_labels(Arc::clone(m));
    }
    if let Some(o) = &opts.observer {
        handler = handler.with_observer(Arc::clone(o));
    }
    if let Some(d) = &opts.destination {
        handler = handler.with_destination_label(Arc::clone(d));
    }
    // Leaves, then manifests: each batch is a flat list of roots with no children, so
    // `dispatch` only bounds how many pushes run at once.
    for batch in [&plan.blobs, &plan.manifests] {
        dispatch(&handler, batch, limit)
            .await
            .map_err(Error::from_images)?;
    }
    for index in index_order(root, &plan.indexes) {
        handler.push(&index).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    fn d(n: u8) -> Descriptor {
        let digest = format!("sha256:{}", format!("{n:02x}").repeat(32));
        Descriptor::new(
            MediaType::ImageIndex,
            u64::from(n),
            digest.parse::<Digest>().unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn nested_indexes_are_ordered_innermost_first_and_each_once() {
        // 1 -> {2, 3}, 2 -> {4}, 3 -> {4}
        let idx = |n: u8, kids: &[u8]| {
            (
                d(n).digest().clone(),
                (d(n), kids.iter().map(|k| d(*k).digest().clone()).collect()),
            )
        };
        let indexes = HashMap::from([idx(1, &[2, 3]), idx(2, &[4]), idx(3, &[4]), idx(4, &[9])]);
        let order: Vec<u64> = index_order(&d(1), &indexes)
            .iter()
            .map(Descriptor::size)
            .collect();
        assert_eq!(order, [4, 2, 3, 1]);
    }
}
