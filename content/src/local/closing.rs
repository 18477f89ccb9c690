//! Writers of this process that were dropped but whose last bytes are still being stored.
//!
//! Dropping a [`LocalWriter`](super::writer::LocalWriter) must not block the dropping
//! thread (it may be a runtime worker), so the writer's own writing thread stores what was
//! buffered, records `updatedat` and only then releases the ingest's lock. Until it has,
//! the ingest is "closing": a writer, status or abort on that ref from this process waits
//! for it (asynchronously) instead of seeing a busy lock or a stale offset, which keeps
//! "drop, then reopen" deterministic inside one process. Other processes see the lock held
//! a moment longer, which [`open_writer`](crate::open_writer) already waits out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// Closing ingest directories, each with an id (so a late `end` cannot remove a newer
/// entry) and a receiver that reports closed when the close finished.
type Registry = HashMap<PathBuf, (u64, watch::Receiver<()>)>;

static CLOSING: Mutex<Option<Registry>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The registry, held only for a map operation (never across I/O or an await).
fn registry() -> MutexGuard<'static, Option<Registry>> {
    CLOSING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks `dir` as closing until the returned guard is dropped.
pub(super) fn begin(dir: &Path) -> Closing {
    let (tx, rx) = watch::channel(());
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    registry()
        .get_or_insert_with(HashMap::new)
        .insert(dir.to_path_buf(), (id, rx));
    Closing {
        dir: dir.to_path_buf(),
        id,
        _done: tx,
    }
}

/// Proof that an ingest is closing; dropping it (after the lock is released) ends that.
#[derive(Debug)]
pub(super) struct Closing {
    dir: PathBuf,
    id: u64,
    // Dropped last: waiters wake when the sender is gone.
    _done: watch::Sender<()>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        let mut reg = registry();
        if let Some(map) = reg.as_mut()
            && map.get(&self.dir).is_some_and(|(id, _)| *id == self.id)
        {
            map.remove(&self.dir);
        }
    }
}

/// Waits until every ingest under `prefix` (an ingest directory, or the ingest root)
/// that a writer of this process was closing has closed.
pub(super) async fn wait(prefix: &Path) {
    let pending: Vec<watch::Receiver<()>> = registry()
        .as_ref()
        .map(|map| {
            map.iter()
                .filter(|(dir, _)| dir.starts_with(prefix))
                .map(|(_, (_, rx))| rx.clone())
                .collect()
        })
        .unwrap_or_default();
    for mut rx in pending {
        // Nothing is ever sent: this returns once the sender is dropped.
        while rx.changed().await.is_ok() {}
    }
}
