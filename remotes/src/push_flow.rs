//! [`push`]: an image graph to a [`Pusher`], children before parents, built on the images
//! crate's [`dispatch`] and the [`push_handler`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dist_content::{Manager, Provider};
use dist_images::media_types::{self, MediaKind};
use dist_images::{Handler, Limits, Matcher, PlatformMatcher, children_of_with, dispatch};
use oci_spec::image::{Descriptor, Digest};

use crate::{Error, ErrorKind, PushObserver, Pusher, Result, SourceLabelHandler, push_handler};

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
    /// ([`PushHandler::with_destination_label`](crate::PushHandler::with_destination_label)).
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
    /// ([`PushHandler::with_source_labels`](crate::PushHandler::with_source_labels)).
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
    /// ([`PushHandler::with_destination_label`](crate::PushHandler::with_destination_label)).
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
