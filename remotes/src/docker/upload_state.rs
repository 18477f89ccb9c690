//! The state of an interrupted chunked upload, kept on disk so that the same push run
//! again (in this process or another) continues the registry's upload session.
//!
//! One small JSON file per (registry host, repository, digest) under the configured
//! directory: the upload URL (the newest `Location`) and the offset the registry
//! acknowledged. It is written atomically (a temporary file renamed over it) after every
//! acknowledged chunk and removed once the upload completes. Everything goes through
//! `tokio::fs`.

use std::path::{Path, PathBuf};

use dist_content::Elided;
use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::{Error, Result};

/// A state file larger than this is not ours (they are a few hundred bytes).
const MAX_STATE_FILE: u64 = 64 * 1024;

/// What is remembered of one upload session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    registry: String,
    repository: String,
    digest: String,
    /// The newest upload `Location`, absolute.
    pub(crate) url: String,
    /// Bytes the registry acknowledged.
    pub(crate) offset: u64,
    /// The registry's `OCI-Chunk-Min-Length` for the session, only sent when it opened.
    #[serde(default)]
    pub(crate) min_chunk: Option<u64>,
}

/// The state file of one blob's upload to one repository.
#[derive(Debug, Clone)]
pub(crate) struct StateFile {
    path: PathBuf,
    registry: String,
    repository: String,
    digest: String,
}

impl StateFile {
    /// The state file for `digest` pushed to `registry`/`repository`, under `dir`. The
    /// name is a hash of the three, so any repository name maps to one safe file name.
    pub(crate) fn new(dir: &Path, registry: &str, repository: &str, digest: &Digest) -> Self {
        let key = format!("{registry}\n{repository}\n{digest}");
        let name = dist_content::sha256_of(key.as_bytes());
        StateFile {
            path: dir.join(format!("{}.json", name.digest())),
            registry: registry.to_string(),
            repository: repository.to_string(),
            digest: digest.to_string(),
        }
    }

    /// The saved session, if there is a readable one for this blob. A file that cannot be
    /// parsed or names another upload is removed and ignored: it only ever saves work.
    pub(crate) async fn load(&self) -> Option<Saved> {
        let file = tokio::fs::File::open(&self.path).await.ok()?;
        let mut text = Vec::new();
        let read = file
            .take(MAX_STATE_FILE + 1)
            .read_to_end(&mut text)
            .await
            .ok();
        let saved = read
            .filter(|n| (*n as u64) <= MAX_STATE_FILE)
            .and_then(|_| serde_json::from_slice::<Saved>(&text).ok())
            .filter(|s| {
                s.registry == self.registry
                    && s.repository == self.repository
                    && s.digest == self.digest
            });
        if saved.is_none() {
            tracing::debug!(path = %self.path.display(), "ignoring unusable upload state");
            self.remove().await;
        }
        saved
    }

    /// Records that the registry acknowledged `offset` bytes of the session at `url`:
    /// written to a temporary file in the same directory, then renamed over the old one,
    /// so a reader sees the old state or the new one, never half of either.
    pub(crate) async fn save(&self, url: &str, offset: u64, min_chunk: Option<u64>) -> Result<()> {
        let saved = Saved {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            digest: self.digest.clone(),
            url: url.to_string(),
            offset,
            min_chunk,
        };
        let io = |context: &str, e: std::io::Error| Error::Io {
            context: format!(
                "{context} upload state {}",
                Elided(&self.path.display().to_string())
            ),
            source: e,
        };
        let json = serde_json::to_vec(&saved).map_err(|e| io("encoding", e.into()))?;
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io("creating the directory of", e))?;
        }
        let tmp = self.path.with_extension(format!(
            "tmp-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        if let Err(e) = tokio::fs::write(&tmp, &json).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io("writing", e));
        }
        if let Err(e) = tokio::fs::rename(&tmp, &self.path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io("renaming", e));
        }
        Ok(())
    }

    /// Forgets the session (done, or no longer usable). A missing file is fine.
    pub(crate) async fn remove(&self) {
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "could not remove upload state"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(s: &[u8]) -> Digest {
        dist_content::sha256_of(s)
    }

    #[tokio::test]
    async fn saved_state_is_loaded_back_and_removed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = StateFile::new(dir.path(), "reg:5000", "a/b", &digest(b"x"));
        assert_eq!(f.load().await, None);
        f.save(
            "http://reg:5000/v2/a/b/blobs/uploads/1?_state=s",
            42,
            Some(7),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let s = f.load().await.unwrap_or_else(|| panic!("saved"));
        assert_eq!(
            (s.url.as_str(), s.offset, s.min_chunk),
            (
                "http://reg:5000/v2/a/b/blobs/uploads/1?_state=s",
                42,
                Some(7)
            )
        );
        f.save("http://reg:5000/v2/a/b/blobs/uploads/1?_state=t", 84, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.load().await.map(|s| s.offset), Some(84));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        f.remove().await;
        assert_eq!(f.load().await, None);
    }

    #[tokio::test]
    async fn each_repository_and_blob_has_its_own_state() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = StateFile::new(dir.path(), "reg", "a", &digest(b"x"));
        let b = StateFile::new(dir.path(), "reg", "b", &digest(b"x"));
        let c = StateFile::new(dir.path(), "reg", "a", &digest(b"y"));
        a.save("http://reg/u/1", 1, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.load().await, None);
        assert_eq!(c.load().await, None);
        assert_eq!(a.load().await.map(|s| s.offset), Some(1));
    }

    #[tokio::test]
    async fn a_garbage_state_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = StateFile::new(dir.path(), "reg", "a", &digest(b"x"));
        tokio::fs::write(&f.path, b"{ not json")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.load().await, None);
        assert!(!f.path.exists());
    }
}
