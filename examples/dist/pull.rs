//! `fetch` and `pull`: the pull flow, assembled from the crates.
//!
//! resolve -> dispatch(fetch + children + platform filter) -> apply_layers -> record the
//! name. The fetch side and the unpack side run at once: the unpack side reads each blob
//! through a [`FollowProvider`], so a layer whose parents are applied is applied from its
//! download as the bytes land in the store, and its snapshot is committed only after the
//! blob itself was verified and committed.

use std::sync::Arc;

use dist::images::{Image, ImageStore};
use dist::remotes::Resolver;
use dist::rootfs::{Layer, Snapshotter, apply_layers};

use crate::CmdResult;
use crate::cli::{Global, SnapshotterKind};
use crate::fetch::{FetchJob, record_image};
use crate::progress::Progress;
use crate::registry;
use crate::root::Root;
use crate::tracker::{FollowProvider, Tracker};

/// Resolves `reference` and sets up the fetch of its content.
async fn prepare(
    global: &Global,
    root: &Root,
    reference: &str,
    concurrency: usize,
) -> CmdResult<(String, FetchJob, oci_spec::image::Descriptor)> {
    let name = registry::normalize_ref(reference)?;
    let resolver = registry::resolver(global, &name)?;
    let progress = Arc::new(Progress::new());
    let (resolved, target) = resolver.resolve(&name).await?;
    progress.state(&name, "resolved", 0);
    let fetcher = resolver.fetcher(&resolved).await?;
    let job = FetchJob {
        store: root.content()?,
        fetcher: Arc::from(fetcher),
        matcher: root.matcher(global)?,
        concurrency,
        progress,
        tracker: Tracker::new(),
    };
    Ok((name, job, target))
}

/// `fetch`: all content of the image for the platform into the store, and the name
/// recorded; nothing unpacked.
pub async fn fetch(global: &Global, root: &Root, reference: &str) -> CmdResult {
    let (name, job, target) = prepare(global, root, reference, 3).await?;
    job.run(&target).await?;
    record_image(&root.images()?, &name, &target).await?;
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
    let (name, job, target) = prepare(global, root, reference, concurrency).await?;
    let snapshotter = root.snapshotter(kind)?;
    remove_abandoned_extractions(snapshotter.as_ref()).await?;
    let follow = FollowProvider {
        store: job.store.clone(),
        tracker: Arc::clone(&job.tracker),
    };
    let image = Image::new(&name, target.clone());
    let unpack = async {
        let manifest = image.manifest(&follow, &job.matcher).await?;
        let diff_ids = image.rootfs(&follow, &job.matcher).await?;
        let blobs = manifest.manifest.layers();
        if blobs.len() != diff_ids.len() {
            return Err(format!(
                "image {name}: {} layers but {} diff_ids in its config",
                blobs.len(),
                diff_ids.len()
            )
            .into());
        }
        let layers: Vec<Layer> = blobs
            .iter()
            .zip(diff_ids)
            .map(|(blob, diff_id)| Layer {
                diff_id,
                blob: blob.clone(),
            })
            .collect();
        job.progress.state(&name, "unpacking", 0);
        let top = apply_layers(&layers, snapshotter.as_ref(), &follow).await?;
        CmdResult::Ok(top)
    };
    let fetch = async {
        let result = job.run(&target).await;
        // Whatever was not fetched by now never will be: readers waiting for it fail.
        job.tracker.close("the fetch ended without this blob");
        result
    };
    let ((), top) = tokio::try_join!(fetch, unpack)?;
    record_image(&root.images()?, &name, &target).await?;
    job.progress.finish();
    println!("{top}");
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

/// Reads the image record for `reference` (normalised) from the image store.
pub async fn stored_image(root: &Root, reference: &str) -> CmdResult<Image> {
    let name = registry::normalize_ref(reference)?;
    match root.images()?.get(&name).await {
        Ok(image) => Ok(image),
        Err(e) if e.kind() == dist::images::ErrorKind::NotFound => {
            Err(format!("image {name}: not found (pull or fetch it first)").into())
        }
        Err(e) => Err(e.into()),
    }
}
