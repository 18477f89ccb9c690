//! The image (name) store: [`ImageStore`] maps names to [`Image`] records, and
//! [`FsImageStore`] keeps them as files under a directory, safe for several processes.
//!
//! Layout: `<root>/<escaped name>.json`, one JSON record per name, replaced atomically
//! (written to a temporary file, synced, renamed over the old one, directory synced), so
//! a reader sees the old record or the new one, never a mix. Writers take an exclusive
//! `flock` on `<root>/.lock` around check-and-write, so `create` and `update` decide on
//! the state they replace even when other processes write at the same time.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use oci_spec::image::Descriptor;
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::{Error, ErrorKind, Image, Result};

/// Name -> [`Image`] records (containerd's `images.Store`).
///
/// [`FsImageStore`] is the durable one. For tests, or a process that keeps names only for
/// its lifetime, a map behind a lock is enough:
///
/// ```
/// # use std::collections::BTreeMap;
/// # use std::sync::{Mutex, MutexGuard, PoisonError};
/// # use std::time::SystemTime;
/// # use async_trait::async_trait;
/// # use dist_images::{Error, ErrorKind, Image, ImageStore, Result};
/// # use oci_spec::image::{Descriptor, Digest, MediaType};
/// #[derive(Default)]
/// struct MemoryImageStore(Mutex<BTreeMap<String, Image>>);
///
/// impl MemoryImageStore {
///     fn map(&self) -> MutexGuard<'_, BTreeMap<String, Image>> {
///         self.0.lock().unwrap_or_else(PoisonError::into_inner)
///     }
/// }
///
/// #[async_trait]
/// impl ImageStore for MemoryImageStore {
///     async fn get(&self, name: &str) -> Result<Image> {
///         let found = self.map().get(name).cloned();
///         found.ok_or_else(|| Error::NotFound(format!("image {name}")))
///     }
///
///     async fn list(&self) -> Result<Vec<Image>> {
///         Ok(self.map().values().cloned().collect()) // a BTreeMap is sorted by name
///     }
///
///     async fn create(&self, mut image: Image) -> Result<Image> {
///         let mut map = self.map();
///         if map.contains_key(&image.name) {
///             return Err(Error::AlreadyExists(format!("image {}", image.name)));
///         }
///         image.created = SystemTime::now();
///         image.updated = image.created;
///         map.insert(image.name.clone(), image.clone());
///         Ok(image)
///     }
///
///     async fn update(&self, mut image: Image) -> Result<Image> {
///         let mut map = self.map();
///         let Some(old) = map.get(&image.name) else {
///             return Err(Error::NotFound(format!("image {}", image.name)));
///         };
///         image.created = old.created;
///         image.updated = SystemTime::now();
///         map.insert(image.name.clone(), image.clone());
///         Ok(image)
///     }
///
///     async fn delete(&self, name: &str) -> Result<()> {
///         match self.map().remove(name) {
///             Some(_) => Ok(()),
///             None => Err(Error::NotFound(format!("image {name}"))),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
/// # let digest: Digest =
/// #     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?;
/// let store = MemoryImageStore::default();
/// let index = Descriptor::new(MediaType::ImageIndex, 0, digest.clone());
/// let first = store.create(Image::new("example.com/app:1", index.clone())).await?;
/// let again = store.create(Image::new("example.com/app:1", index.clone())).await;
/// assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);
///
/// // Point the name at a single manifest: the creation time stays.
/// let mut retarget = first.clone();
/// retarget.target = Descriptor::new(MediaType::ImageManifest, 0, digest);
/// assert_eq!(store.update(retarget).await?.created, first.created);
/// let now = store.get("example.com/app:1").await?;
/// assert_eq!(now.target.media_type(), &MediaType::ImageManifest);
///
/// store.create(Image::new("example.com/app:0", index)).await?;
/// let names: Vec<String> = store.list().await?.into_iter().map(|i| i.name).collect();
/// assert_eq!(names, ["example.com/app:0", "example.com/app:1"]);
/// store.delete("example.com/app:0").await?;
/// assert_eq!(store.get("example.com/app:0").await.unwrap_err().kind(), ErrorKind::NotFound);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// The record for `name`; `NotFound` when there is none.
    async fn get(&self, name: &str) -> Result<Image>;

    /// Every record, sorted by name. A record that cannot be read is left out (and, in
    /// [`FsImageStore`], logged) rather than failing the whole listing.
    async fn list(&self) -> Result<Vec<Image>>;

    /// Records a new name; `AlreadyExists` when the name is taken. Returns the stored
    /// record (created and updated set to now).
    async fn create(&self, image: Image) -> Result<Image>;

    /// Replaces the target and labels of an existing name, keeping its creation time;
    /// `NotFound` when there is none. Returns the stored record.
    async fn update(&self, image: Image) -> Result<Image>;

    /// Removes a name; `NotFound` when there is none.
    async fn delete(&self, name: &str) -> Result<()>;

    /// Points `image.name` at `image.target`: creates the record, or updates it (keeping
    /// its creation time) when the name exists, as containerd's pull does after fetching.
    /// Returns the stored record.
    async fn create_or_update(&self, image: Image) -> Result<Image> {
        match self.create(image.clone()).await {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => self.update(image).await,
            other => other,
        }
    }
}

/// The on-disk form of an [`Image`].
#[derive(Serialize, Deserialize)]
struct Record {
    name: String,
    target: Descriptor,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    labels: HashMap<String, String>,
    created: String,
    updated: String,
}

fn io_err(context: impl std::fmt::Display, e: io::Error) -> Error {
    let kind = if e.kind() == io::ErrorKind::NotFound {
        ErrorKind::NotFound
    } else {
        ErrorKind::Io
    };
    Error::other(kind, dist_content::Error::io(context.to_string(), e))
}

/// The file-name key for `name`: bytes outside `[A-Za-z0-9_.-]` (and a leading `.`)
/// become `%XX`; keys that would be too long for a file name keep a prefix and gain a
/// `~<sha256>` suffix (`~` never appears unescaped, so keys stay distinct).
pub fn escape_name(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            key.push(char::from(b));
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
    const MAX_KEY: usize = 180;
    if key.len() > MAX_KEY {
        let hash = dist_content::sha256_of(name.as_bytes()).digest().to_owned();
        let mut cut = MAX_KEY - hash.len() - 1;
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        key.truncate(cut);
        key.push('~');
        key.push_str(&hash);
    }
    key
}

/// An [`ImageStore`] with one file per name under a root directory.
#[derive(Debug, Clone)]
pub struct FsImageStore {
    root: Arc<PathBuf>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FsImageStore {
    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| io_err(root.display(), e))?;
        Ok(FsImageStore {
            root: Arc::new(root),
        })
    }

    /// The directory holding the records.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(root: &Path, name: &str) -> Result<PathBuf> {
        if name.is_empty() {
            return Err(Error::Invalid {
                what: "image name".into(),
                reason: "empty".into(),
            });
        }
        Ok(root.join(format!("{}.json", escape_name(name))))
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || f(&root))
            .await
            .map_err(|e| Error::other(ErrorKind::Io, e))?
    }
}

fn read_record(path: &Path, name: &str) -> Result<Option<Image>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path.display(), e)),
    };
    let invalid = |reason: String| Error::Invalid {
        what: path.display().to_string(),
        reason,
    };
    let r: Record = serde_json::from_slice(&bytes)
        .map_err(|e| Error::decode(path.display().to_string(), "image record", e))?;
    if !name.is_empty() && r.name != name {
        return Ok(None);
    }
    let time = |s: &str| humantime::parse_rfc3339(s).map_err(|e| invalid(format!("{s:?}: {e}")));
    let mut image = Image::new(r.name, r.target);
    image.labels = r.labels;
    image.created = time(&r.created)?;
    image.updated = time(&r.updated)?;
    Ok(Some(image))
}

fn write_record(root: &Path, path: &Path, image: &Image) -> Result<()> {
    let record = Record {
        name: image.name.clone(),
        target: image.target.clone(),
        labels: image.labels.clone(),
        created: humantime::format_rfc3339_nanos(image.created).to_string(),
        updated: humantime::format_rfc3339_nanos(image.updated).to_string(),
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| Error::other(ErrorKind::Io, e))?;
    let tmp = root.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(root)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| io_err(path.display(), e))
}

/// Holds the store-wide writer lock until dropped (the kernel releases it with the fd).
struct WriteLock {
    _file: File,
}

fn lock(root: &Path) -> Result<WriteLock> {
    let path = root.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err(path.display(), e))?;
    flock(&file, FlockOperation::LockExclusive)
        .map_err(|e| io_err(path.display(), io::Error::from(e)))?;
    Ok(WriteLock { _file: file })
}

#[async_trait]
impl ImageStore for FsImageStore {
    async fn get(&self, name: &str) -> Result<Image> {
        let name = name.to_owned();
        self.blocking(move |root| {
            read_record(&FsImageStore::path_of(root, &name)?, &name)?
                .ok_or_else(|| Error::NotFound(format!("image {name}")))
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Image>> {
        self.blocking(|root| {
            let mut out = Vec::new();
            for entry in fs::read_dir(root).map_err(|e| io_err(root.display(), e))? {
                let path = entry.map_err(|e| io_err(root.display(), e))?.path();
                let file = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
                if file.starts_with('.') || !file.ends_with(".json") {
                    continue;
                }
                // One unreadable or corrupt record must not hide every other name: it is
                // reported and skipped (`get` of that name still returns the error).
                match read_record(&path, "") {
                    Ok(Some(image)) => out.push(image),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        record = %dist_content::Elided(&path.display().to_string()),
                        error = %e,
                        "skipping an image record that cannot be read"
                    ),
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn create(&self, image: Image) -> Result<Image> {
        self.blocking(move |root| {
            let path = FsImageStore::path_of(root, &image.name)?;
            let _lock = lock(root)?;
            if read_record(&path, &image.name)?.is_some() {
                return Err(Error::AlreadyExists(format!("image {}", image.name)));
            }
            let now = SystemTime::now();
            let image = Image {
                created: now,
                updated: now,
                ..image
            };
            write_record(root, &path, &image)?;
            Ok(image)
        })
        .await
    }

    async fn update(&self, image: Image) -> Result<Image> {
        self.blocking(move |root| {
            let path = FsImageStore::path_of(root, &image.name)?;
            let _lock = lock(root)?;
            let old = read_record(&path, &image.name)?
                .ok_or_else(|| Error::NotFound(format!("image {}", image.name)))?;
            let image = Image {
                created: old.created,
                updated: SystemTime::now(),
                ..image
            };
            write_record(root, &path, &image)?;
            Ok(image)
        })
        .await
    }

    async fn delete(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.blocking(move |root| {
            let path = FsImageStore::path_of(root, &name)?;
            let _lock = lock(root)?;
            if read_record(&path, &name)?.is_none() {
                return Err(Error::NotFound(format!("image {name}")));
            }
            fs::remove_file(&path).map_err(|e| io_err(path.display(), e))?;
            File::open(root)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err(root.display(), e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_valid_file_name(key: &str) -> bool {
        !key.is_empty()
            && key.len() + ".json".len() <= 255
            && !key.starts_with('.')
            && !key.contains(['/', '\0'])
    }

    proptest! {
        #[test]
        fn escaped_names_are_plain_file_names(name in "\\PC{1,400}") {
            prop_assert!(is_valid_file_name(&escape_name(&name)));
        }

        #[test]
        fn distinct_names_have_distinct_keys(a in "[a-z%./:@ ~-]{1,300}", b in "[a-z%./:@ ~-]{1,300}") {
            prop_assume!(a != b);
            prop_assert_ne!(escape_name(&a), escape_name(&b));
        }
    }

    #[test]
    fn short_names_escape_readably() {
        assert_eq!(
            escape_name("docker.io/library/redis:7"),
            "docker.io%2Flibrary%2Fredis%3A7"
        );
        assert_eq!(escape_name(".."), "%2E.");
    }
}
