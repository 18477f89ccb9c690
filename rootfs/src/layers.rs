//! `apply_layers`: unpack an image's layer chain into snapshots named by ChainID.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use dist_content::Provider;
use oci_spec::image::Descriptor;

use tokio::sync::{Semaphore, watch};

use crate::apply::spawn_blocking_apply;
use crate::snapshot::{Kind, Mount, Snapshotter};
use crate::{ApplyOptions, ChainId, DiffId, Error, ErrorKind, Result, WhiteoutMode, chain_ids};

/// One layer of an image, as [`Image::layers`](dist_images::Image::layers) lists them:
/// the DiffID its config gives and the blob that holds it.
pub use dist_images::Layer;

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
/// `provider`, applied into a fresh active snapshot, checked against its DiffID and
/// committed, parent first; on any failure (a DiffID mismatch included) that snapshot and
/// every uncommitted one above it are removed and the error returned, while the layers
/// below stay committed. If another process commits the same ChainID first, its snapshot
/// is used.
///
/// When the snapshotter can rebase ([`Snapshotter::rebase_whiteouts`]), up to
/// [`UnpackOptions::concurrency`] layers are applied at once, each into a snapshot of its
/// own, as their bytes arrive; otherwise each is applied on its committed parent in turn.
///
/// Applies with [`UnpackOptions::default()`]; [`apply_layers_with`] takes options.
pub async fn apply_layers(
    layers: &[Layer],
    snapshotter: &dyn Snapshotter,
    provider: &dyn Provider,
) -> Result<ChainId> {
    apply_layers_with(layers, snapshotter, provider, UnpackOptions::default()).await
}

/// How [`apply_layers_with`] unpacks a chain.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// Options for every layer's apply. How whiteouts are written is the snapshotter's
    /// choice (its mounts say), so `apply.whiteouts` is replaced by it.
    pub apply: ApplyOptions,
    /// How many layers are applied at once when the snapshotter can rebase; 1 applies
    /// them one after another. Each applying layer holds a few MiB of buffers and a
    /// blocking thread, so this bounds a pull's memory as well as its parallelism.
    pub concurrency: usize,
}

/// Layers applied at once by default: enough to keep two cores busy inflating while a
/// third layer waits for its bytes, and few enough to keep a pull's buffers well under
/// 64 MiB.
pub const DEFAULT_UNPACK_CONCURRENCY: usize = 3;

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            apply: ApplyOptions::default(),
            concurrency: DEFAULT_UNPACK_CONCURRENCY,
        }
    }
}

impl UnpackOptions {
    /// Sets the options of every layer's apply.
    pub fn apply(mut self, apply: ApplyOptions) -> Self {
        self.apply = apply;
        self
    }

    /// Sets how many layers are applied at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
}

/// Apply options alone: layers applied at the default concurrency.
impl From<ApplyOptions> for UnpackOptions {
    fn from(apply: ApplyOptions) -> Self {
        UnpackOptions::default().apply(apply)
    }
}

/// [`apply_layers`] with `options` (an [`ApplyOptions`] converts into one): a rootless or
/// user-namespaced runtime passes its id mapping and ownership choice here.
pub async fn apply_layers_with(
    layers: &[Layer],
    snapshotter: &dyn Snapshotter,
    provider: &dyn Provider,
    options: impl Into<UnpackOptions>,
) -> Result<ChainId> {
    let options = options.into();
    let diff_ids: Vec<DiffId> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chain = chain_ids(&diff_ids);
    let Some(top) = chain.last().cloned() else {
        return Err(Error::InvalidArgument("no layers to apply".into()));
    };
    let mut start = 0;
    for i in (0..chain.len()).rev() {
        if is_committed(snapshotter, &chain[i]).await? {
            start = i + 1;
            break;
        }
    }
    let ctx = Ctx {
        layers,
        chain: &chain,
        snapshotter,
        provider,
        options: &options.apply,
    };
    match snapshotter.rebase_whiteouts() {
        Some(mode) if options.concurrency > 1 && chain.len() - start > 1 => {
            apply_parallel(&ctx, start, mode, options.concurrency).await?;
        }
        _ => {
            for i in start..chain.len() {
                let parent = i.checked_sub(1).map(|p| chain[p].as_ref());
                let key = ctx.extract(i, parent, None, None).await?;
                ctx.commit(i, &key, None).await?;
            }
        }
    }
    Ok(top)
}

async fn is_committed(snapshotter: &dyn Snapshotter, chain_id: &ChainId) -> Result<bool> {
    match snapshotter.stat(chain_id.as_ref()).await {
        Ok(info) => Ok(info.kind == Kind::Committed),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// What every layer of one `apply_layers_with` call shares.
struct Ctx<'a> {
    layers: &'a [Layer],
    chain: &'a [ChainId],
    snapshotter: &'a dyn Snapshotter,
    provider: &'a dyn Provider,
    options: &'a ApplyOptions,
}

/// Where a parallel apply stands: the next layer to commit (all below are committed) and
/// the lowest layer that failed (`usize::MAX` while none did). Layers above a failed one
/// stop and remove their snapshots; layers below it go on and are committed.
#[derive(Debug, Clone, Copy)]
struct Progress {
    next: usize,
    failed: usize,
}

/// Applies layers `start..` of `ctx` at once, at most `concurrency` of them applying at a
/// time, each into a snapshot without a parent, and commits each onto its parent once
/// that is committed.
async fn apply_parallel(
    ctx: &Ctx<'_>,
    start: usize,
    whiteouts: WhiteoutMode,
    concurrency: usize,
) -> Result<()> {
    let (progress, _) = watch::channel(Progress {
        next: start,
        failed: usize::MAX,
    });
    let permits = Semaphore::new(concurrency);
    let results = futures::future::join_all(
        (start..ctx.chain.len()).map(|i| ctx.parallel_one(i, whiteouts, &progress, &permits)),
    )
    .await;
    // The lowest layer's error is the one a sequential apply would have met first.
    results.into_iter().collect::<Result<Vec<()>>>().map(drop)
}

impl Ctx<'_> {
    /// Layer `i` of a parallel apply: applied as soon as a permit is free, committed in
    /// turn; `Ok` also when it stopped because a layer below failed.
    async fn parallel_one(
        &self,
        i: usize,
        whiteouts: WhiteoutMode,
        progress: &watch::Sender<Progress>,
        permits: &Semaphore,
    ) -> Result<()> {
        let mut watch = progress.subscribe();
        let stopped = |p: &Progress| p.failed < i;
        let fail = |e: Error| {
            progress.send_modify(|p| p.failed = p.failed.min(i));
            Err(e)
        };
        // Every way out of here either commits this layer (advancing `next`) or records a
        // failure at or below it: the layers above wait for one of the two.
        let committed = match is_committed(self.snapshotter, &self.chain[i]).await {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let key = if committed {
            None // committed meanwhile by a concurrent pull: nothing to apply
        } else {
            let permit = tokio::select! {
                p = permits.acquire() => p,
                _ = watch.wait_for(stopped) => return Ok(()),
            };
            let Ok(_permit) = permit else {
                return fail(Error::FailedPrecondition("layer permits closed".into()));
            };
            // The bottom layer has no parent to whiteout anything in: applied as its
            // sequential apply would be.
            let mode = (i > 0).then_some(whiteouts);
            match self.extract(i, None, mode, Some((&watch, i))).await {
                Ok(key) => Some(key),
                Err(_) if stopped(&watch.borrow()) => return Ok(()),
                Err(e) => return fail(e),
            }
        };
        let turn = watch.wait_for(|p| p.next == i || stopped(p)).await;
        let stop = turn.map_or(true, |p| stopped(&p));
        if stop {
            if let Some(key) = key {
                let _ = self.snapshotter.remove(&key).await;
            }
            return Ok(());
        }
        if let Some(key) = key {
            let parent = i.checked_sub(1).map(|p| self.chain[p].as_ref());
            if let Err(e) = self.commit(i, &key, Some(parent)).await {
                return fail(e);
            }
        }
        progress.send_modify(|p| p.next = i + 1);
        Ok(())
    }

    /// Applies layer `i` into a fresh active snapshot on `parent` (whiteouts as `mode`
    /// says, else as its mounts say) and checks its DiffID; returns the snapshot's key.
    /// On failure, or when `stop` says a layer below failed, removes the snapshot.
    async fn extract(
        &self,
        i: usize,
        parent: Option<&str>,
        mode: Option<WhiteoutMode>,
        stop: Option<(&watch::Receiver<Progress>, usize)>,
    ) -> Result<String> {
        let layer = &self.layers[i];
        let chain_id = &self.chain[i];
        // Unique across processes and pid namespaces sharing the store: a random part, not
        // a pid. Liveness is not in the key either: the snapshotter holds a lock for this
        // process until the snapshot is committed or removed (see
        // `Snapshotter::remove_abandoned`).
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nonce =
            RandomState::new().hash_one((std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let key = format!("{EXTRACT_KEY_PREFIX}{nonce:016x}-{chain_id}");
        let mounts = self.snapshotter.prepare(&key, parent).await?;
        let result = async {
            let (dir, whiteouts) = Mount::apply_target(&mounts).ok_or_else(|| {
                Error::FailedPrecondition(format!("snapshot {key:?} has no writable directory"))
            })?;
            let opts = self.options.clone().whiteouts(mode.unwrap_or(whiteouts));
            let stop = async {
                match stop {
                    Some((watch, i)) => {
                        let mut watch = watch.clone();
                        if watch.wait_for(|p| p.failed < i).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let applied = apply_blob(self.provider, &layer.blob, &dir, opts, stop).await?;
            if applied.diff_id != layer.diff_id {
                return Err(Error::DiffIdMismatch {
                    blob: layer.blob.digest().to_string(),
                    expected: layer.diff_id.to_string(),
                    actual: applied.diff_id.to_string(),
                });
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(key),
            Err(e) => {
                let _ = self.snapshotter.remove(&key).await;
                Err(e)
            }
        }
    }

    /// Commits extracted snapshot `key` as layer `i`'s ChainID, onto `onto` when given (a
    /// snapshot prepared without its parent). A ChainID another process committed first
    /// is used instead, and `key` removed.
    async fn commit(&self, i: usize, key: &str, onto: Option<Option<&str>>) -> Result<()> {
        let chain_id = &self.chain[i];
        let committed = match onto {
            None => self.snapshotter.commit(chain_id.as_ref(), key).await,
            Some(parent) => {
                self.snapshotter
                    .commit_onto(chain_id.as_ref(), key, parent)
                    .await
            }
        };
        match committed {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.snapshotter.remove(key).await;
                if e.kind() == ErrorKind::AlreadyExists {
                    tracing::debug!(%chain_id, "snapshot committed concurrently; using it");
                    return Ok(());
                }
                Err(e)
            }
        }
    }
}

/// Streams a blob from the content store into a blocking [`apply`](crate::apply).
/// Stops early, with an error, once `stop` completes (a layer below failed).
async fn apply_blob(
    provider: &dyn Provider,
    blob: &Descriptor,
    dir: &std::path::Path,
    opts: ApplyOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<crate::Applied> {
    let stopped = || Error::FailedPrecondition("stopped: a layer below failed".into());
    tokio::pin!(stop);
    let reader = tokio::select! {
        r = provider.reader_at(blob) => r?,
        () = &mut stop => return Err(stopped()),
    };
    let (tx, spare, job) = spawn_blocking_apply(dir, opts);
    let pump = async move {
        let mut offset = 0u64;
        loop {
            // Reused buffers are full length unless they carried a short read.
            let mut buf = spare.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let read = tokio::select! {
                r = reader.read_at(&mut buf, offset) => r,
                () = &mut stop => {
                    let _ = tx.send(Err(std::io::Error::other("stopped"))).await;
                    return Err(stopped());
                }
            };
            match read {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    buf.truncate(n);
                    offset += n as u64;
                    if tx.send(Ok(buf)).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    // The applier only needs to stop; the caller gets the store's own
                    // error (as `Error::Content`, its `source()`), since `pumped?` wins.
                    let stop = std::io::Error::other("reading the layer blob failed");
                    let _ = tx.send(Err(stop)).await;
                    return Err(Error::from(e));
                }
            }
        }
    };
    let (pumped, applied) = tokio::join!(pump, job);
    pumped?;
    applied
}
