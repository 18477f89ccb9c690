//! `fetch` and `pull`: the pull flow, assembled from the crates.
//!
//! Resolve the name; then fetch and unpack side by side: the unpack side reads each blob
//! through `LocalStore::follow`, so a layer whose parents are applied is applied from its
//! download as the bytes land, and its snapshot is committed only after the blob itself
//! was verified; then record the image.

use std::sync::Arc;

use dist::content::FollowOptions;
use dist::images::{Image, ImageStore};
use dist::rootfs::{Snapshotter, apply_layers};

use crate::CmdResult;
use crate::cli::{Global, SnapshotterKind};
use crate::fetch::{FetchJob, LIMITS};
use crate::progress::Progress;
use crate::registry;
use crate::root::Root;

/// Resolves `reference` and sets up the fetch of its content.
async fn resolve(
    global: &Global,
    root: &Root,
    reference: &str,
    concurrency: usize,
) -> CmdResult<(Image, FetchJob)> {
    let name = registry::normalize_ref(reference)?;
    let resolver = registry::any_resolver(global, &name).await?;
    let progress = Arc::new(Progress::new());
    let (resolved, target) = resolver.resolve(&name).await?;
    progress.state(&name, "resolved", 0);
    let job = FetchJob {
        store: root.content()?,
        fetcher: Arc::from(resolver.fetcher(&resolved).await?),
        matcher: root.matcher(global)?,
        concurrency,
        progress,
    };
    Ok((Image::new(name, target).with_limits(LIMITS), job))
}

/// `fetch`: all content of the image for the platform into the store, and the name
/// recorded; nothing unpacked.
pub async fn fetch(global: &Global, root: &Root, reference: &str) -> CmdResult {
    let (image, job) = resolve(global, root, reference, 3).await?;
    job.run(&image.target).await?;
    root.images()?.create_or_update(image).await?;
    job.progress.finish();
    Ok(())
}

/// `pull`: fetch and unpack into the snapshotter, record the name, print the top ChainID.
pub async fn pull(
    global: &Global,
    root: &Root,
    reference: &str,
    kind: SnapshotterKind,
    concurrency: usize,
) -> CmdResult {
    let (image, job) = resolve(global, root, reference, concurrency).await?;
    let snapshotter = root.snapshotter(kind)?;
    remove_abandoned_extractions(snapshotter.as_ref()).await?;
    // Every blob read is being fetched (or resumed) by this pull: wait for its writer
    // until the fetch ends, however long a queued download takes to start.
    let follow = job
        .store
        .follow_with(FollowOptions::default().writer_gone_after(None));
    let unpack = async {
        let layers = image.layers(&follow, &job.matcher).await?;
        job.progress.state(&image.name, "unpacking", 0);
        CmdResult::Ok(apply_layers(&layers, snapshotter.as_ref(), &follow).await?)
    };
    let fetch = async {
        let fetched = job.run(&image.target).await;
        follow.close(); // what was not fetched by now never will be
        fetched
    };
    let ((), top) = tokio::try_join!(fetch, unpack)?;
    root.images()?.create_or_update(image).await?;
    job.progress.finish();
    outln!("{top}")?;
    Ok(())
}

/// Removes the active extraction snapshots of pulls whose process is gone (killed
/// mid-unpack), so they do not pile up; their layers are applied again. The snapshotter
/// tells by the lock each pull holds on its extractions, not by pids.
async fn remove_abandoned_extractions(snapshotter: &dyn Snapshotter) -> CmdResult {
    for key in snapshotter.remove_abandoned().await? {
        tracing::info!(key, "removed the snapshot of an abandoned pull");
    }
    Ok(())
}
