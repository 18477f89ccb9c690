//! An OCI image layout directory as a remote: [`LayoutResolver`], its fetcher and pusher.
//!
//! Everything built on [`Resolver`], [`Fetcher`] and [`Pusher`] works with a layout
//! unchanged: pull from `oci:DIR:tag`, or push into one (blobs are verified as they are
//! written, the tag set once the manifest is in).

use std::path::PathBuf;

use async_trait::async_trait;
use bytes::Bytes;
use dist_content::{Elided, LayoutStore, Provider, WriterOpts};
use oci_spec::image::{Descriptor, Digest, MediaType};
use tokio::io::AsyncWriteExt;

use crate::{ByteStream, Error, Fetcher, PushOutcome, Pusher, Resolver, Result};

/// What starts a layout locator.
pub const LAYOUT_PREFIX: &str = "oci:";

/// The largest read handed out per stream item.
const CHUNK: usize = 1 << 20;

/// A parsed OCI layout locator.
///
/// A layout is named `oci:<dir>[:<tag>]` or `oci:<dir>@<digest>`, as skopeo names it, with
/// one rule more: `<dir>` starts with `/` or `.` (`oci:/srv/images:v1`,
/// `oci:./out:latest`, `oci:.`). That keeps every locator apart from registry references:
/// a reference may start `oci:` (the image `oci` at some tag, or a host `oci` with a
/// port), but what follows the colon of a reference is a tag (starting with a letter,
/// digit or `_`) or a port (digits), never `/` or `.`. The directory ends at the first
/// `:` after it (so it cannot hold one); without a tag the layout must hold exactly one
/// image. [`LayoutLocator::parse`] says whether a string is a locator.
///
/// The tag matches an `index.json` entry's `org.opencontainers.image.ref.name` (what
/// skopeo and umoci write), else its `io.containerd.image.name` (containerd's export).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayoutLocator {
    /// The layout directory.
    pub dir: PathBuf,
    /// The tag, when one was given.
    pub tag: Option<String>,
    /// The digest, when one was given instead of a tag.
    pub digest: Option<Digest>,
}

impl LayoutLocator {
    /// The locator `s` names, `None` when `s` is not a layout locator (a registry
    /// reference, say), or an `InvalidReference` error when it is one but malformed.
    ///
    /// ```
    /// use dist_remotes::LayoutLocator;
    ///
    /// let loc = LayoutLocator::parse("oci:/srv/images:v1").unwrap().unwrap();
    /// assert_eq!(loc.dir.to_str(), Some("/srv/images"));
    /// assert_eq!(loc.tag.as_deref(), Some("v1"));
    /// assert!(LayoutLocator::parse("oci:v1").is_none()); // the image `oci`, tag `v1`
    /// assert!(LayoutLocator::parse("docker.io/library/redis").is_none());
    /// ```
    pub fn parse(s: &str) -> Option<Result<LayoutLocator>> {
        let rest = s.strip_prefix(LAYOUT_PREFIX)?;
        if !(rest.starts_with('/') || rest.starts_with('.')) {
            return None;
        }
        Some(Self::parse_rest(s, rest))
    }

    fn parse_rest(s: &str, rest: &str) -> Result<LayoutLocator> {
        let invalid = |reason: &str, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            Error::InvalidReference {
                reference: Elided(s).to_string(),
                reason: reason.to_owned(),
                source,
            }
        };
        if let Some((dir, digest)) = rest.rsplit_once('@') {
            let digest: Digest = digest
                .parse()
                .map_err(|e| invalid("malformed digest", Some(Box::new(e))))?;
            if dir.contains(':') {
                return Err(invalid("a tag and a digest", None));
            }
            return Ok(LayoutLocator {
                dir: PathBuf::from(dir),
                tag: None,
                digest: Some(digest),
            });
        }
        let (dir, tag) = match rest.split_once(':') {
            Some((dir, tag)) => (dir, Some(tag)),
            None => (rest, None),
        };
        if tag.is_some_and(|t| t.is_empty() || t.chars().any(char::is_control)) {
            return Err(invalid("empty tag or one with control characters", None));
        }
        if dir.is_empty() {
            return Err(invalid("no directory", None));
        }
        Ok(LayoutLocator {
            dir: PathBuf::from(dir),
            tag: tag.map(str::to_owned),
            digest: None,
        })
    }

    /// Whether `s` is a layout locator (well-formed or not) rather than a registry
    /// reference.
    pub fn is_locator(s: &str) -> bool {
        Self::parse(s).is_some()
    }
}

impl std::fmt::Display for LayoutLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{LAYOUT_PREFIX}{}", self.dir.display())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn locator(s: &str) -> Result<LayoutLocator> {
    LayoutLocator::parse(s).unwrap_or_else(|| {
        Err(Error::InvalidReference {
            reference: Elided(s).to_string(),
            reason: format!("not an OCI layout locator ({LAYOUT_PREFIX}<dir>[:<tag>])"),
            source: None,
        })
    })
}

async fn open(dir: PathBuf, create: bool) -> Result<LayoutStore> {
    tokio::task::spawn_blocking(move || {
        if create {
            LayoutStore::create(dir)
        } else {
            LayoutStore::open(dir)
        }
    })
    .await
    .map_err(|e| Error::Io {
        context: "open layout".into(),
        source: std::io::Error::other(e),
    })?
    .map_err(Error::from)
}

/// A [`Resolver`] over OCI image layouts, named by `oci:` locators (see
/// [`LayoutLocator`]). Stateless: each call opens the layout it names.
#[derive(Debug, Clone, Default)]
pub struct LayoutResolver {
    max_manifest_size: Option<u64>,
}

impl LayoutResolver {
    /// A resolver for layout locators.
    pub fn new() -> Self {
        LayoutResolver::default()
    }

    /// Refuses, when resolving by digest, a root object larger than `bytes` (the default
    /// is [`DEFAULT_MAX_MANIFEST_SIZE`](crate::DEFAULT_MAX_MANIFEST_SIZE)).
    pub fn with_max_manifest_size(mut self, bytes: u64) -> Self {
        self.max_manifest_size = Some(bytes);
        self
    }
}

#[async_trait]
impl Resolver for LayoutResolver {
    /// Resolves `oci:<dir>[:<tag>|@<digest>]`; the name returned is the locator itself.
    async fn resolve(&self, reference: &str) -> Result<(String, Descriptor)> {
        let loc = locator(reference)?;
        let store = open(loc.dir.clone(), false).await?;
        let desc = match &loc.digest {
            Some(digest) => {
                let limit = self
                    .max_manifest_size
                    .unwrap_or(crate::DEFAULT_MAX_MANIFEST_SIZE);
                by_digest(&store, digest, limit).await?
            }
            None => store
                .resolve(loc.tag.as_deref().unwrap_or(""))
                .await
                .map_err(|e| match e.kind() {
                    crate::ErrorKind::NotFound => Error::NotFound {
                        what: Elided(reference).to_string(),
                    },
                    _ => Error::from(e),
                })?,
        };
        Ok((reference.to_owned(), desc))
    }

    async fn fetcher(&self, name: &str) -> Result<Box<dyn Fetcher>> {
        let loc = locator(name)?;
        Ok(Box::new(LayoutFetcher {
            store: open(loc.dir, false).await?,
        }))
    }

    /// A pusher into the layout (created when missing); manifests and indexes pushed go
    /// under the locator's tag.
    async fn pusher(&self, name: &str) -> Result<Box<dyn Pusher>> {
        let loc = locator(name)?;
        Ok(Box::new(LayoutPusher {
            store: open(loc.dir, true).await?,
            tag: loc.tag,
        }))
    }
}

/// The descriptor of the blob `digest` in `store`: the `index.json` entry naming it, else
/// the blob itself with the media type its body declares.
async fn by_digest(store: &LayoutStore, digest: &Digest, limit: u64) -> Result<Descriptor> {
    if let Some(entry) = store
        .entries()
        .await?
        .into_iter()
        .find(|d| d.digest() == digest)
    {
        return Ok(entry);
    }
    let probe = Descriptor::new(MediaType::ImageManifest, 0, digest.clone());
    let reader = store.reader_at(&probe).await?;
    let size = reader.size();
    if size > limit {
        return Err(Error::TooLarge {
            what: digest.to_string(),
            size,
            limit,
        });
    }
    let desc = Descriptor::new(MediaType::ImageManifest, size, digest.clone());
    let body = dist_content::read_blob(store, &desc, limit).await?;
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(&body).map_err(|e| Error::Mismatch {
        what: digest.to_string(),
        reason: format!("not a manifest or index: {e}"),
    })?;
    let media_type = match (probe.media_type, probe.manifests) {
        (Some(mt), _) => MediaType::from(mt.as_str()),
        (None, Some(_)) => MediaType::ImageIndex,
        (None, None) => MediaType::ImageManifest,
    };
    Ok(Descriptor::new(media_type, size, digest.clone()))
}

/// Reads blobs of a layout as verified streams.
#[derive(Debug, Clone)]
pub struct LayoutFetcher {
    store: LayoutStore,
}

impl LayoutFetcher {
    /// A fetcher over an opened layout.
    pub fn new(store: LayoutStore) -> Self {
        LayoutFetcher { store }
    }
}

#[async_trait]
impl Fetcher for LayoutFetcher {
    async fn fetch_at(&self, desc: &Descriptor, offset: u64) -> Result<ByteStream> {
        let reader = self.store.reader_at(desc).await?;
        if reader.size() != desc.size() {
            return Err(Error::Mismatch {
                what: desc.digest().to_string(),
                reason: format!(
                    "layout blob holds {} bytes, descriptor says {}",
                    reader.size(),
                    desc.size()
                ),
            });
        }
        let stream = futures::stream::try_unfold((reader, offset), |(reader, offset)| async move {
            let mut buf = vec![0u8; CHUNK];
            let n = reader.read_at(&mut buf, offset).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            let next = offset.saturating_add(n as u64);
            Ok(Some((Bytes::from(buf), (reader, next))))
        });
        crate::verified(Box::pin(stream), desc.digest(), desc.size(), offset)
    }
}

/// Writes pushed content into a layout: blobs verified before they become visible,
/// manifests and indexes tagged with the pusher's tag.
#[derive(Debug, Clone)]
pub struct LayoutPusher {
    store: LayoutStore,
    tag: Option<String>,
}

impl LayoutPusher {
    /// A pusher into an opened layout, tagging manifests and indexes with `tag`.
    pub fn new(store: LayoutStore, tag: Option<String>) -> Self {
        LayoutPusher { store, tag }
    }
}

#[async_trait]
impl Pusher for LayoutPusher {
    async fn push(&self, desc: &Descriptor, provider: &dyn Provider) -> Result<PushOutcome> {
        let opts = WriterOpts::new(crate::ref_key(desc)).expected(desc.clone());
        let outcome =
            match dist_content::open_writer(&self.store, opts, dist_content::DEFAULT_LOCK_WAIT)
                .await
            {
                Err(e) if e.kind() == crate::ErrorKind::AlreadyExists => {
                    PushOutcome::AlreadyPresent
                }
                Err(e) => return Err(e.into()),
                Ok(mut writer) => {
                    writer.truncate(0).await?;
                    let reader = provider.reader_at(desc).await?;
                    let mut offset = 0u64;
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        let n = reader.read_at(&mut buf, offset).await?;
                        if n == 0 {
                            break;
                        }
                        writer.write_all(&buf[..n]).await.map_err(|e| Error::Io {
                            context: format!("write {}", desc.digest()),
                            source: e,
                        })?;
                        offset = offset.saturating_add(n as u64);
                    }
                    match writer.commit(desc.size(), Some(desc.digest())).await {
                        Err(e) if e.kind() == crate::ErrorKind::AlreadyExists => {
                            PushOutcome::AlreadyPresent
                        }
                        other => {
                            other?;
                            PushOutcome::Pushed
                        }
                    }
                }
            };
        if let Some(tag) = &self.tag
            && dist_images::media_types::is_manifest_or_index(desc.media_type())
        {
            self.store.tag(tag, desc).await?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
