//! `unpack`, `apply` and `images`: what is done with content once it is in the store.

use std::path::Path;

use dist::images::{Image, ImageStore};
use dist::rootfs::{ApplyOptions, Snapshotter, Unpacked, apply, unpack as unpack_image};

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

/// `unpack`: the flattened root filesystem of a stored image into `dir` (absent or empty):
/// a reflink or copy of the snapshot a pull left, else the layers applied flattened.
pub async fn unpack(global: &Global, root: &Root, reference: &str, dir: &Path) -> CmdResult {
    let image = stored_image(root, reference).await?;
    let store = root.content()?;
    let layers = image.layers(&store, &root.matcher(global)?).await?;
    ensure_empty_dir(dir)?;
    let owned = root.existing_snapshotters()?;
    let snapshotters: Vec<&dyn Snapshotter> = owned.iter().map(|s| s.as_ref()).collect();
    let how = unpack_image(&layers, &snapshotters, &store, dir, ApplyOptions::default()).await?;
    match how {
        Unpacked::Reflink => tracing::debug!("unpacked by reflinking the committed snapshot"),
        Unpacked::Copy => tracing::debug!("unpacked by copying the committed snapshot"),
        Unpacked::Flattened(how) => tracing::debug!(?how, "unpacked by a flattened apply"),
        _ => tracing::debug!(?how, "unpacked"),
    }
    Ok(())
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
