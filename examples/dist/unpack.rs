//! `unpack`, `apply` and `images`: what is done with content once it is in the store.

use std::path::Path;

use dist::content::{Provider, ReaderAtReader};
use dist::images::{Image, ImageStore};
use dist::rootfs::{
    ApplyOptions, DiffId, SnapshotKind, apply, apply_async, chain_ids, copy_mounted,
};

use crate::CmdResult;
use crate::cli::Global;
use crate::registry;
use crate::root::Root;
use indicatif::DecimalBytes;

/// Reads the image record for `reference` (normalised) from the image store.
async fn stored_image(root: &Root, reference: &str) -> CmdResult<Image> {
    let name = registry::normalize_ref(reference)?;
    match root.images()?.get(&name).await {
        Ok(image) => Ok(image.with_limits(crate::fetch::LIMITS)),
        Err(e) if e.kind() == dist::images::ErrorKind::NotFound => {
            Err(format!("image {name}: not found (pull or fetch it first)").into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `unpack`: the flattened root filesystem of a stored image into `dir` (absent or empty).
pub async fn unpack(global: &Global, root: &Root, reference: &str, dir: &Path) -> CmdResult {
    let image = stored_image(root, reference).await?;
    let store = root.content()?;
    let layers = image.layers(&store, &root.matcher(global)?).await?;
    ensure_empty_dir(dir)?;
    let diff_ids: Vec<DiffId> = layers.iter().map(|l| l.diff_id.clone()).collect();
    if copy_unpacked_snapshot(root, &diff_ids, dir).await? {
        return Ok(());
    }
    for layer in &layers {
        let reader = ReaderAtReader::new(store.reader_at(&layer.blob).await?);
        let applied = apply_async(reader, dir, ApplyOptions::default()).await?;
        if applied.diff_id != layer.diff_id {
            return Err(format!(
                "layer {}: DiffID {} does not match the config's {}",
                layer.blob.digest(),
                applied.diff_id,
                layer.diff_id
            )
            .into());
        }
    }
    Ok(())
}

/// When a pull left the image unpacked in a snapshotter (its top ChainID committed), copies
/// that snapshot into `dir` through a read-only view: a file copy instead of decompressing
/// and applying every layer again. The snapshot was built from verified layers, so it is
/// the same tree. Returns false when no snapshotter has it.
async fn copy_unpacked_snapshot(root: &Root, diff_ids: &[DiffId], dir: &Path) -> CmdResult<bool> {
    let Some(top) = chain_ids(diff_ids).pop() else {
        return Ok(false);
    };
    for snapshotter in root.existing_snapshotters()? {
        match snapshotter.stat(top.as_ref()).await {
            Ok(info) if info.kind == SnapshotKind::Committed => {}
            _ => continue,
        }
        let key = format!("unpack-{}-{top}", std::process::id());
        let mounts = snapshotter.view(&key, Some(top.as_ref())).await?;
        let target = dir.to_path_buf();
        let copied = tokio::task::spawn_blocking(move || copy_mounted(&mounts, &target)).await;
        snapshotter.remove(&key).await?;
        copied??;
        tracing::debug!(chain_id = %top, "unpacked by copying the committed snapshot");
        return Ok(true);
    }
    Ok(false)
}

/// `dir` must not exist (it is created) or be an empty directory.
fn ensure_empty_dir(dir: &Path) -> CmdResult {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!("{}: directory is not empty", dir.display()).into());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(std::fs::create_dir_all(dir)?),
        Err(e) => Err(format!("{}: {e}", dir.display()).into()),
    }
}

/// `apply`: one layer from stdin onto `dir`; prints its DiffID.
pub async fn apply_stdin(dir: &Path) -> CmdResult {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()).into());
    }
    let dir = dir.to_path_buf();
    let applied = tokio::task::spawn_blocking(move || {
        apply(std::io::stdin().lock(), &dir, &ApplyOptions::default())
    })
    .await??;
    outln!("{}", applied.diff_id)?;
    Ok(())
}

/// `images`: REF, TYPE, DIGEST, SIZE (of the whole image for the platform).
pub async fn list_images(global: &Global, root: &Root) -> CmdResult {
    let store = root.content()?;
    let matcher = root.matcher(global)?;
    let images = root.images()?.list().await?;
    outln!(
        "{:<40} {:<55} {:<71} {:>10}",
        "REF",
        "TYPE",
        "DIGEST",
        "SIZE"
    )?;
    for image in images {
        let size = match image.size(&store, &matcher).await {
            Ok(n) => DecimalBytes(n).to_string(),
            Err(_) => "-".into(),
        };
        outln!(
            "{:<40} {:<55} {:<71} {:>10}",
            image.name,
            image.target.media_type().to_string(),
            image.target.digest().to_string(),
            size
        )?;
    }
    Ok(())
}

/// `images rm`: remove names (content stays).
pub async fn remove_images(root: &Root, references: &[String]) -> CmdResult {
    let images = root.images()?;
    for reference in references {
        let name = crate::registry::normalize_ref(reference)?;
        images
            .delete(&name)
            .await
            .map_err(|e| format!("image {name}: {e}"))?;
        outln!("{name}")?;
    }
    Ok(())
}
