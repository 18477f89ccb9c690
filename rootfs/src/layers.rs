//! `apply_layers`: unpack an image's layer chain into snapshots named by ChainID.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use dist_content::Provider;
use oci_spec::image::Descriptor;

use crate::apply::spawn_blocking_apply;
use crate::snapshot::{Kind, Mount, Snapshotter};
use crate::{ApplyOptions, ChainId, DiffId, Error, ErrorKind, Result, chain_ids};

/// One layer of an image: the DiffID its config lists and the blob that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The uncompressed digest from the image config's `rootfs.diff_ids`.
    pub diff_id: DiffId,
    /// The (possibly compressed) layer blob from the manifest.
    pub blob: Descriptor,
}

const CHUNK: usize = 256 * 1024;

/// Key prefix of the active snapshots [`apply_layers`] prepares to extract a layer into
/// (containerd names them the same way). A snapshotter may treat them specially: only
/// the applier writes into them and they are committed or removed straight after (see
/// [`Share::HardlinkExtract`](crate::Share::HardlinkExtract)), and the local ones hold
/// them for the extracting process so that a killed pull's leftovers can be told apart
/// ([`Snapshotter::remove_abandoned`]).
pub const EXTRACT_KEY_PREFIX: &str = "extract-";

/// Applies `layers` (bottom first) as a chain of committed snapshots named by their
/// ChainIDs and returns the top ChainID.
///
/// The longest prefix already committed is skipped. Each remaining layer is read from
/// `provider`, applied into a fresh active snapshot on its parent, checked against its
/// DiffID and committed; on any failure (a DiffID mismatch included) that snapshot is
/// removed and the error returned. If another process commits the same ChainID first,
/// its snapshot is used.
pub async fn apply_layers(
    layers: &[Layer],
    snapshotter: &dyn Snapshotter,
    provider: &dyn Provider,
) -> Result<ChainId> {
    let diff_ids: Vec<DiffId> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chain = chain_ids(&diff_ids);
    let Some(top) = chain.last().cloned() else {
        return Err(Error::InvalidArgument("no layers to apply".into()));
    };
    let mut start = 0;
    for i in (0..chain.len()).rev() {
        match snapshotter.stat(chain[i].as_ref()).await {
            Ok(info) if info.kind == Kind::Committed => {
                start = i + 1;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    for i in start..chain.len() {
        let parent = i.checked_sub(1).map(|p| chain[p].as_ref());
        apply_one(&layers[i], &chain[i], parent, snapshotter, provider).await?;
    }
    Ok(top)
}

async fn apply_one(
    layer: &Layer,
    chain_id: &ChainId,
    parent: Option<&str>,
    snapshotter: &dyn Snapshotter,
    provider: &dyn Provider,
) -> Result<()> {
    // Unique across processes and pid namespaces sharing the store: a random part, not a
    // pid. Liveness is not in the key either: the snapshotter holds a lock for this process
    // until the snapshot is committed or removed (see `Snapshotter::remove_abandoned`).
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nonce =
        RandomState::new().hash_one((std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let key = format!("{EXTRACT_KEY_PREFIX}{nonce:016x}-{chain_id}");
    let mounts = snapshotter.prepare(&key, parent).await?;
    let result = async {
        let (dir, whiteouts) = Mount::apply_target(&mounts).ok_or_else(|| {
            Error::FailedPrecondition(format!("snapshot {key:?} has no writable directory"))
        })?;
        let applied = apply_blob(
            provider,
            &layer.blob,
            &dir,
            ApplyOptions::default().whiteouts(whiteouts),
        )
        .await?;
        if applied.diff_id != layer.diff_id {
            return Err(Error::DiffIdMismatch {
                blob: layer.blob.digest().to_string(),
                expected: layer.diff_id.to_string(),
                actual: applied.diff_id.to_string(),
            });
        }
        snapshotter.commit(chain_id.as_ref(), &key).await
    }
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = snapshotter.remove(&key).await;
            if e.kind() == ErrorKind::AlreadyExists {
                tracing::debug!(%chain_id, "snapshot committed concurrently; using it");
                return Ok(());
            }
            Err(e)
        }
    }
}

/// Streams a blob from the content store into a blocking [`apply`](crate::apply).
async fn apply_blob(
    provider: &dyn Provider,
    blob: &Descriptor,
    dir: &std::path::Path,
    opts: ApplyOptions,
) -> Result<crate::Applied> {
    let reader = provider.reader_at(blob).await?;
    let (tx, spare, job) = spawn_blocking_apply(dir, opts);
    let pump = async move {
        let mut offset = 0u64;
        loop {
            // Reused buffers are full length unless they carried a short read.
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            match reader.read_at(&mut buf, offset).await {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    buf.truncate(n);
                    offset += n as u64;
                    if tx.send(Ok(buf)).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return Err(Error::from(e));
                }
            }
        }
    };
    let (pumped, applied) = tokio::join!(pump, job);
    pumped?;
    applied
}
