//! What the fetch side tells the unpack side during `pull`: per blob, how far the
//! download is and whether it was committed; and a [`Provider`] that reads blobs while
//! they download, so layers are unpacked from the stream as it arrives.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dist::content::{Error, LocalStore, Provider, ReaderAt, Result};
use dist::remotes::ref_key;
use oci_spec::image::{Descriptor, Digest};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

/// How often a waiting reader looks at the file again even without news: the writer
/// writes behind the events it sends.
const POLL: Duration = Duration::from_millis(20);

/// The fate of one blob in this pull.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Committed,
    Failed(String),
}

/// Download events, shared by the fetch handlers and the readers that follow them.
#[derive(Debug)]
pub struct Tracker {
    states: Mutex<HashMap<Digest, State>>,
    closed: Mutex<Option<String>>,
    news: watch::Sender<u64>,
}

impl Tracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Tracker {
            states: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
            news: watch::channel(0).0,
        })
    }

    fn bump(&self) {
        self.news.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// More bytes of some blob were received.
    pub fn progressed(&self) {
        self.bump();
    }

    /// `digest` is committed to the store (verified).
    pub fn committed(&self, digest: &Digest) {
        if let Ok(mut s) = self.states.lock() {
            s.insert(digest.clone(), State::Committed);
        }
        self.bump();
    }

    /// `digest` will not arrive: its download failed.
    pub fn failed(&self, digest: &Digest, why: String) {
        if let Ok(mut s) = self.states.lock() {
            s.insert(digest.clone(), State::Failed(why));
        }
        self.bump();
    }

    /// Nothing more will arrive (the fetch side stopped): readers of blobs that are not
    /// committed by now fail with `why`.
    pub fn close(&self, why: impl Into<String>) {
        if let Ok(mut a) = self.closed.lock() {
            a.get_or_insert(why.into());
        }
        self.bump();
    }

    fn state(&self, digest: &Digest) -> std::result::Result<Option<State>, String> {
        if let Some(state) = self.states.lock().ok().and_then(|s| s.get(digest).cloned()) {
            return Ok(Some(state));
        }
        match self.closed.lock().ok().and_then(|a| a.clone()) {
            Some(why) => Err(why),
            None => Ok(None),
        }
    }

    /// Waits for news, or a short while.
    pub async fn wait(&self) {
        let mut rx = self.news.subscribe();
        let _ = tokio::time::timeout(POLL, rx.changed()).await;
    }
}

/// Reads blobs from a [`LocalStore`] while they are being fetched into it: from the
/// committed blob when it is there, else from the ingest's data file as it grows. The
/// last byte is held back until the blob is committed, so whoever reads to the end has
/// read verified content, and a blob that fails verification fails the read.
pub struct FollowProvider {
    pub store: LocalStore,
    pub tracker: Arc<Tracker>,
}

#[async_trait]
impl Provider for FollowProvider {
    async fn reader_at(&self, desc: &Descriptor) -> Result<Box<dyn ReaderAt>> {
        // The ingest's data file in containerd's layout: ingest/<sha256(ref)>/data.
        let ingest = self
            .store
            .root()
            .join("ingest")
            .join(hex::encode(Sha256::digest(ref_key(desc).as_bytes())))
            .join("data");
        Ok(Box::new(FollowReader {
            desc: desc.clone(),
            blob: self.store.blob_path(desc.digest()),
            ingest,
            tracker: Arc::clone(&self.tracker),
            file: tokio::sync::Mutex::new((None, Vec::new())),
        }))
    }
}

struct FollowReader {
    desc: Descriptor,
    blob: PathBuf,
    ingest: PathBuf,
    tracker: Arc<Tracker>,
    /// The open file and whether it is the committed blob, and a read buffer kept
    /// between calls (a fresh zeroed buffer per read costs as much as the read).
    file: tokio::sync::Mutex<(Option<OpenFile>, Vec<u8>)>,
}

/// A file being read and whether it is the committed blob (else the ingest's data).
type OpenFile = (Arc<File>, bool);

impl FollowReader {
    fn unavailable(&self, why: String) -> Error {
        Error::io(
            format!("reading {} while it downloads", self.desc.digest()),
            std::io::Error::other(why),
        )
    }
}

#[async_trait]
impl ReaderAt for FollowReader {
    fn size(&self) -> u64 {
        self.desc.size()
    }

    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let size = self.desc.size();
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let mut guard = self.file.lock().await;
        let (slot, scratch) = &mut *guard;
        loop {
            let state = self
                .tracker
                .state(self.desc.digest())
                .map_err(|why| self.unavailable(why))?;
            if let Some(State::Failed(why)) = &state {
                return Err(self.unavailable(why.clone()));
            }
            let committed = state == Some(State::Committed);
            if committed && !slot.as_ref().is_some_and(|(_, blob)| *blob) {
                // Once committed, read the blob itself (the same bytes, now verified).
                *slot = File::open(&self.blob).ok().map(|f| (Arc::new(f), true));
            }
            if slot.is_none() {
                *slot = File::open(&self.ingest).ok().map(|f| (Arc::new(f), false));
            }
            if let Some((file, _)) = slot.as_ref() {
                // Hold the last byte back until the blob is verified.
                let limit = if committed { size } else { size - 1 };
                if offset < limit {
                    let want = buf.len().min((limit - offset) as usize);
                    let file = Arc::clone(file);
                    let mut chunk = std::mem::take(scratch);
                    chunk.resize(want, 0);
                    let (n, chunk) = tokio::task::spawn_blocking(move || {
                        let n = file.read_at(&mut chunk, offset);
                        (n, chunk)
                    })
                    .await
                    .map_err(|e| self.unavailable(e.to_string()))?;
                    let n = n.map_err(|e| Error::io(self.ingest.display().to_string(), e))?;
                    buf[..n].copy_from_slice(&chunk[..n]);
                    *scratch = chunk;
                    if n > 0 {
                        return Ok(n);
                    }
                    if committed {
                        return Err(self.unavailable("committed blob is short".into()));
                    }
                }
            }
            self.tracker.wait().await;
        }
    }
}
