//! Reading and managing committed blobs of a [`LocalStore`].

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use oci_spec::image::{Descriptor, Digest};

use super::LocalStore;
use super::writer::blocking;
use crate::{Error, Filter, Info, LabelMerge, Manager, Provider, ReaderAt, Result};

/// The largest single read handed to a blocking task.
const MAX_READ: usize = 1 << 20;

/// Random access to one blob of a [`LocalStore`].
#[derive(Debug)]
pub struct LocalReaderAt {
    file: Arc<File>,
    size: u64,
}

#[async_trait]
impl ReaderAt for LocalReaderAt {
    fn size(&self) -> u64 {
        self.size
    }

    async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(MAX_READ);
        let file = Arc::clone(&self.file);
        let chunk = blocking(move || {
            let mut chunk = vec![0u8; want];
            let n = file
                .read_at(&mut chunk, offset)
                .map_err(|e| Error::io("read blob", e))?;
            chunk.truncate(n);
            Ok(chunk)
        })
        .await?;
        buf[..chunk.len()].copy_from_slice(&chunk);
        Ok(chunk.len())
    }

    fn read_at_blocking(&self, buf: &mut [u8], offset: u64) -> Option<Result<usize>> {
        if offset >= self.size || buf.is_empty() {
            return Some(Ok(0));
        }
        let left = usize::try_from(self.size - offset).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        Some(
            self.file
                .read_at(&mut buf[..want], offset)
                .map_err(|e| Error::io("read blob", e)),
        )
    }
}

fn not_found_or(e: io::Error, digest: &Digest, path: &Path, what: &str) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound(digest.to_string())
    } else {
        Error::io(format!("{what} {}", path.display()), e)
    }
}

impl LocalStore {
    fn info_blocking(&self, digest: &Digest) -> Result<Info> {
        let path = self.blob_path(digest);
        let md = std::fs::metadata(&path).map_err(|e| not_found_or(e, digest, &path, "stat"))?;
        if !md.is_file() {
            return Err(Error::NotFound(digest.to_string()));
        }
        let created_at = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let labels_path = self.labels_path(digest);
        let (labels, updated_at) = match std::fs::read(&labels_path) {
            Ok(bytes) => {
                let labels: HashMap<String, String> = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::io(format!("parse {}", labels_path.display()), e.into()))?;
                let updated = std::fs::metadata(&labels_path)
                    .and_then(|m| m.modified())
                    .unwrap_or(created_at);
                (labels, updated.max(created_at))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (HashMap::new(), created_at),
            Err(e) => return Err(Error::io(format!("read {}", labels_path.display()), e)),
        };
        Ok(Info {
            digest: digest.clone(),
            size: md.len(),
            created_at,
            updated_at,
            labels,
        })
    }

    /// An exclusive `flock` on `<root>/labels/.lock`, held around every label write, so
    /// that a read-modify-write ([`Manager::add_labels`]) never loses another process's
    /// write in between.
    fn labels_lock(&self) -> Result<File> {
        let dir = self.root.join("labels");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(format!("lock {}", path.display()), e.into()))?;
        Ok(file)
    }

    fn add_labels_blocking(
        &self,
        digest: &Digest,
        labels: HashMap<String, String>,
    ) -> Result<Info> {
        let _lock = self.labels_lock()?;
        let mut info = self.info_blocking(digest)?;
        if labels.iter().all(|(k, v)| info.labels.get(k) == Some(v)) {
            return Ok(info);
        }
        info.labels.extend(labels);
        self.write_labels_locked(digest, info.labels)
    }

    fn merge_label_blocking(&self, digest: &Digest, key: &str, merge: LabelMerge) -> Result<Info> {
        let _lock = self.labels_lock()?;
        let mut info = self.info_blocking(digest)?;
        match merge(info.labels.get(key).map(String::as_str)) {
            Some(value) => {
                info.labels.insert(key.to_owned(), value);
                self.write_labels_locked(digest, info.labels)
            }
            None => Ok(info),
        }
    }

    fn set_labels_blocking(
        &self,
        digest: &Digest,
        labels: HashMap<String, String>,
    ) -> Result<Info> {
        let _lock = self.labels_lock()?;
        self.write_labels_locked(digest, labels)
    }

    fn write_labels_locked(
        &self,
        digest: &Digest,
        labels: HashMap<String, String>,
    ) -> Result<Info> {
        self.info_blocking(digest)?;
        let path = self.labels_path(digest);
        if labels.is_empty() {
            super::ingest::remove_if_exists(&path)?;
        } else {
            let dir = path.parent().unwrap_or(self.root());
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
            let bytes =
                serde_json::to_vec(&labels).map_err(|e| Error::io("encode labels", e.into()))?;
            // A unique temporary file, synced, then renamed: readers never see half a label
            // file, and concurrent updates never share a temporary file (the last wins).
            super::atomic::write_files(dir, &[(digest.digest(), &bytes)])?;
        }
        self.info_blocking(digest)
    }

    fn walk_blocking(&self, filter: &Filter) -> Result<Vec<Info>> {
        let blobs = self.root.join("blobs");
        let mut out = Vec::new();
        let algs = match std::fs::read_dir(&blobs) {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(format!("read {}", blobs.display()), e)),
        };
        for alg in algs {
            let alg = alg.map_err(|e| Error::io(format!("read {}", blobs.display()), e))?;
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            let Ok(entries) = std::fs::read_dir(alg.path()) else {
                continue;
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(format!("read {alg_name}"), e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // Anything that is not a well-formed digest (temp files, junk) is skipped.
                let Ok(digest) = Digest::from_str(&format!("{alg_name}:{name}")) else {
                    continue;
                };
                let info = match self.info_blocking(&digest) {
                    Ok(i) => i,
                    Err(Error::NotFound(_)) => continue, // deleted while we walked
                    // One blob whose labels are corrupt must not fail every listing: it is
                    // reported and skipped (`info` of that digest still returns the error).
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "skipping a blob whose info cannot be read");
                        continue;
                    }
                };
                if filter.matches_labels(&info.labels) {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.digest.as_ref().cmp(b.digest.as_ref()));
        Ok(out)
    }
}

#[async_trait]
impl Provider for LocalStore {
    async fn reader_at(&self, desc: &Descriptor) -> Result<Box<dyn ReaderAt>> {
        let digest = desc.digest().clone();
        let path = self.blob_path(&digest);
        let reader = blocking(move || {
            let file = File::open(&path).map_err(|e| not_found_or(e, &digest, &path, "open"))?;
            let md = file
                .metadata()
                .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
            if !md.is_file() {
                return Err(Error::NotFound(digest.to_string()));
            }
            Ok(LocalReaderAt {
                file: Arc::new(file),
                size: md.len(),
            })
        })
        .await?;
        Ok(Box::new(reader))
    }
}

#[async_trait]
impl Manager for LocalStore {
    async fn info(&self, digest: &Digest) -> Result<Info> {
        let store = self.clone();
        let digest = digest.clone();
        blocking(move || store.info_blocking(&digest)).await
    }

    async fn update_labels(
        &self,
        digest: &Digest,
        labels: HashMap<String, String>,
    ) -> Result<Info> {
        let store = self.clone();
        let digest = digest.clone();
        blocking(move || store.set_labels_blocking(&digest, labels)).await
    }

    async fn add_labels(&self, digest: &Digest, labels: HashMap<String, String>) -> Result<Info> {
        let store = self.clone();
        let digest = digest.clone();
        blocking(move || store.add_labels_blocking(&digest, labels)).await
    }

    async fn merge_label(&self, digest: &Digest, key: &str, merge: LabelMerge) -> Result<Info> {
        let store = self.clone();
        let (digest, key) = (digest.clone(), key.to_owned());
        blocking(move || store.merge_label_blocking(&digest, &key, merge)).await
    }

    async fn walk(
        &self,
        filter: &Filter,
        f: &mut (dyn FnMut(Info) -> Result<()> + Send),
    ) -> Result<()> {
        let store = self.clone();
        let filter = filter.clone();
        for info in blocking(move || store.walk_blocking(&filter)).await? {
            f(info)?;
        }
        Ok(())
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let store = self.clone();
        let digest = digest.clone();
        blocking(move || {
            let path = store.blob_path(&digest);
            std::fs::remove_file(&path).map_err(|e| not_found_or(e, &digest, &path, "remove"))?;
            super::ingest::remove_if_exists(&store.labels_path(&digest))
        })
        .await
    }
}
