//! `fetch` and `pull`: the pull flow, assembled from the crates.
//!
//! Resolve the name; then fetch and unpack side by side: the unpack side reads each blob
//! through `LocalStore::follow`, so a layer is applied from its download as the bytes land
//! (on overlay every layer at once, on native once its parents are applied), and its
//! snapshot is committed only after the blob itself was verified and its parent
//! committed; then record the image. The snapshotter is overlay where it works, else
//! native, unless `--snapshotter` says.

use std::path::Path;
use std::sync::Arc;

use dist::content::{FollowOptions, Lease};
use dist::images::gc::label_snapshot;
use dist::images::{Image, ImageStore};
use dist::rootfs::{Snapshotter, UnpackOptions, apply_layers_with};

use crate::CmdResult;
use crate::cli::{Global, SnapshotterChoice};
use crate::fetch::{FetchJob, LIMITS};
use crate::leases;
use crate::progress::Progress;
use crate::registry;
use crate::root::Root;

/// Resolves `reference` and sets up the fetch of its content.
async fn resolve(
    global: &Global,
    root: &Root,
    reference: &str,
    concurrency: usize,
    verify_key: Option<&Path>,
    lease: &Arc<Lease>,
) -> CmdResult<(Image, FetchJob)> {
    let name = registry::normalize_ref(reference)?;
    let resolver = registry::any_resolver(global, &name).await?;
    let progress = Arc::new(Progress::new());
    let (resolved, target) = resolver.resolve(&name).await?;
    if let Some(key) = verify_key {
        // Before anything is fetched: a refused image leaves nothing behind.
        // Signatures hang off registry repositories (tag attachments, referrers).
        if dist::remotes::LayoutLocator::is_locator(&name) {
            return Err("--verify-key needs a registry reference, not a layout".into());
        }
        let docker = registry::resolver(global, &name).await?;
        crate::referrers::verify(&docker, &resolved, &target, key).await?;
    }
    progress.state(&name, "resolved", 0);
    let job = FetchJob {
        store: root.content()?,
        fetcher: Arc::from(resolver.fetcher(&resolved).await?),
        matcher: root.matcher(global)?,
        concurrency,
        progress,
        lease: Some(Arc::clone(lease)),
        source: registry::registry_name(&resolved),
    };
    Ok((Image::new(name, target).with_limits(LIMITS), job))
}

/// `fetch`: all content of the image for the platform into the store, and the name
/// recorded; nothing unpacked.
pub async fn fetch(global: &Global, root: &Root, reference: &str) -> CmdResult {
    let lease = leases::hold(root, "fetch").await?;
    let (image, job) = resolve(global, root, reference, 3, None, &lease).await?;
    job.run(&image.target).await?;
    root.images()?.create_or_update(image).await?;
    job.progress.finish();
    leases::release(lease).await
}

/// How `dist pull` was asked to run.
pub struct PullArgs<'a> {
    pub choice: SnapshotterChoice,
    /// Layers downloaded at once.
    pub concurrency: usize,
    /// Layers applied at once (where the snapshotter can).
    pub unpack_concurrency: usize,
    pub verify_key: Option<&'a Path>,
}

/// `pull`: fetch and unpack into the snapshotter, record the name, print the top ChainID.
pub async fn pull(global: &Global, root: &Root, reference: &str, args: PullArgs<'_>) -> CmdResult {
    let lease = leases::hold(root, "pull").await?;
    let (concurrency, verify_key) = (args.concurrency, args.verify_key);
    let (image, job) = resolve(global, root, reference, concurrency, verify_key, &lease).await?;
    let kind = root.resolve(args.choice).await?;
    let unpack_options = UnpackOptions::default().concurrency(args.unpack_concurrency);
    let snapshotter = root.snapshotter(kind)?;
    let snapshotter_name = crate::root::snapshotter_name(kind);
    remove_abandoned_extractions(snapshotter.as_ref()).await?;
    // Every blob read is being fetched (or resumed) by this pull: wait for its writer
    // until the fetch ends, however long a queued download takes to start.
    let follow = job
        .store
        .follow_with(FollowOptions::default().writer_gone_after(None));
    let unpack = async {
        let layers = image.layers(&follow, &job.matcher).await?;
        leases::attach_chain(&lease, snapshotter_name, &layers).await?;
        job.progress.state(&image.name, "unpacking", 0);
        let top = apply_layers_with(&layers, snapshotter.as_ref(), &follow, unpack_options);
        CmdResult::Ok(top.await?)
    };
    let fetch = async {
        let fetched = job.run(&image.target).await;
        follow.close(); // what was not fetched by now never will be
        fetched
    };
    let ((), top) = tokio::try_join!(fetch, unpack)?;
    let config = image.config(&job.store, &job.matcher).await?;
    label_snapshot(&job.store, config.digest(), snapshotter_name, top.as_ref()).await?;
    root.images()?.create_or_update(image).await?;
    job.progress.finish();
    leases::release(lease).await?;
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
