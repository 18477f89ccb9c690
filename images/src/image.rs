//! [`Image`]: a name bound to a target descriptor, and what can be learnt about it from a
//! content store (its manifest for a platform, config, rootfs, size, completeness).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::SystemTime;

use dist_content::Provider;
use oci_spec::image::{Descriptor, Digest, ImageConfiguration, ImageManifest, Platform};

use crate::children::{parse_index, parse_manifest, read_blob};
use crate::media_types::{self, MediaKind};
use crate::platforms::Matcher;
use crate::walk::MAX_DEPTH;
use crate::{Error, ErrorKind, Limits, Result};

/// A named image: the name (usually a reference string) and the descriptor it points to,
/// an index or a manifest.
///
/// Its methods read manifests, indexes and configs within [`Limits`] (the default ones
/// unless [`with_limits`](Image::with_limits) says otherwise). The limits are how this
/// value reads, not part of the record: stores do not keep them and `==` ignores them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Image {
    /// The image's name, for example `docker.io/library/alpine:3.20`.
    pub name: String,
    /// The manifest or index the name points to.
    pub target: Descriptor,
    /// Caller-defined labels.
    pub labels: HashMap<String, String>,
    /// When the name was first recorded.
    pub created: SystemTime,
    /// When the record last changed.
    pub updated: SystemTime,
    /// How much of a manifest or config the methods read.
    pub(crate) limits: Limits,
}

impl PartialEq for Image {
    fn eq(&self, other: &Image) -> bool {
        let Image {
            name,
            target,
            labels,
            created,
            updated,
            limits: _,
        } = self;
        *name == other.name
            && *target == other.target
            && *labels == other.labels
            && *created == other.created
            && *updated == other.updated
    }
}

impl Eq for Image {}

/// The manifest chosen for a platform, with the descriptor it was read through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlatformManifest {
    /// The manifest's descriptor (from the index, or the image target itself).
    pub descriptor: Descriptor,
    /// The parsed manifest.
    pub manifest: ImageManifest,
}

/// One layer of an image: the blob from the manifest paired with the DiffID the config
/// gives for it (the digest of its uncompressed tar stream). [`Image::layers`] builds the
/// list; `dist-rootfs` applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The uncompressed digest from the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// The (possibly compressed) layer blob from the manifest.
    pub blob: Descriptor,
}

/// What [`Image::check`] found: which blobs the platform's manifest needs and which of them
/// the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// True when every required blob is present.
    pub available: bool,
    /// The config and the distinct layers, or the missing index/manifest when the walk
    /// could not get that far.
    pub required: Vec<Descriptor>,
    /// The required blobs the store has.
    pub present: Vec<Descriptor>,
    /// The required blobs the store lacks.
    pub missing: Vec<Descriptor>,
}

enum Selected {
    Found(Box<PlatformManifest>),
    Missing(Box<Descriptor>),
}

type SelectFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Selected>>> + Send + 'a>>;

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Content(c) if c.kind() == ErrorKind::NotFound)
}

fn config_platform(config: &ImageConfiguration) -> Platform {
    let mut p = Platform::default();
    p.set_os(config.os().clone());
    p.set_architecture(config.architecture().clone());
    p.set_variant(config.variant().clone());
    p
}

/// Finds the best manifest for `matcher` below `desc`, depth-first in preference order.
fn select<'a, P: Provider + ?Sized, M: Matcher + ?Sized>(
    provider: &'a P,
    desc: &'a Descriptor,
    matcher: &'a M,
    limits: &'a Limits,
    path: Vec<Digest>,
) -> SelectFuture<'a> {
    Box::pin(async move {
        // A manifest at depth MAX_DEPTH would put its layers beyond what `walk` accepts.
        if path.len() >= MAX_DEPTH {
            return Err(Error::Invalid {
                what: desc.digest().to_string(),
                reason: format!("index nested deeper than {MAX_DEPTH} levels"),
            });
        }
        if path.contains(desc.digest()) {
            return Err(Error::Invalid {
                what: desc.digest().to_string(),
                reason: "cycle: index refers to itself".into(),
            });
        }
        let kind = media_types::kind(desc.media_type());
        if !matches!(kind, MediaKind::Manifest | MediaKind::Index) {
            return Ok(None);
        }
        let bytes = match read_blob(provider, desc, limits.max_manifest_size).await {
            Err(e) if is_not_found(&e) => {
                return Ok(Some(Selected::Missing(Box::new(desc.clone()))));
            }
            other => other?,
        };
        if kind == MediaKind::Manifest {
            let manifest = parse_manifest(desc, &bytes)?;
            if desc.platform().is_none() {
                // An artifact (signature, SBOM) has no image config and no platform.
                if !media_types::is_config(manifest.config().media_type()) {
                    return Ok(None);
                }
                match read_blob(provider, manifest.config(), limits.max_config_size).await {
                    Ok(cfg) => {
                        let config: ImageConfiguration =
                            serde_json::from_slice(&cfg).map_err(|e| {
                                Error::decode(manifest.config().digest().to_string(), "config", e)
                            })?;
                        if !matcher.matches(&config_platform(&config)) {
                            return Ok(None);
                        }
                    }
                    // Without the config the platform is unknown: accept it, so that
                    // `check` reports the config as missing.
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(Some(Selected::Found(Box::new(PlatformManifest {
                descriptor: desc.clone(),
                manifest,
            }))));
        }
        let index = parse_index(desc, &bytes)?;
        let mut candidates: Vec<(usize, &Descriptor)> = index
            .manifests()
            .iter()
            .filter_map(|c| match c.platform() {
                Some(p) => matcher.rank(p).map(|r| (r, c)),
                // An artifact (it names its type) is never the image: not read at all, so
                // that a pull which skipped it does not find it missing.
                None if crate::filters::is_artifact_entry(c) => None,
                None => Some((usize::MAX, c)),
            })
            .collect();
        candidates.sort_by_key(|(rank, _)| *rank);
        let mut below = path;
        below.push(desc.digest().clone());
        for (_, child) in candidates {
            if let Some(found) = select(provider, child, matcher, limits, below.clone()).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    })
}

impl Image {
    /// A new record for `name` pointing at `target`, created and updated now.
    pub fn new(name: impl Into<String>, target: Descriptor) -> Self {
        let now = SystemTime::now();
        Image {
            name: name.into(),
            target,
            labels: HashMap::new(),
            created: now,
            updated: now,
            limits: Limits::DEFAULT,
        }
    }

    /// This image, reading manifests, indexes and configs within `limits` (the value the
    /// resolver and the children handler were given).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits the methods read within.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn no_match(&self) -> Error {
        Error::NotFound(format!(
            "image {}: no manifest for the requested platform",
            self.name
        ))
    }

    /// The manifest for the best platform `matcher` accepts: the target itself when it is a
    /// manifest (if its config's platform matches), or the preferred entry of the index.
    pub async fn manifest<P, M>(&self, provider: &P, matcher: &M) -> Result<PlatformManifest>
    where
        P: Provider + ?Sized,
        M: Matcher + ?Sized,
    {
        match select(provider, &self.target, matcher, &self.limits, Vec::new()).await? {
            Some(Selected::Found(m)) => Ok(*m),
            Some(Selected::Missing(desc)) => Err(Error::Content(dist_content::Error::NotFound(
                desc.digest().to_string(),
            ))),
            None => Err(self.no_match()),
        }
    }

    /// The descriptor of the config of the platform's manifest.
    pub async fn config<P, M>(&self, provider: &P, matcher: &M) -> Result<Descriptor>
    where
        P: Provider + ?Sized,
        M: Matcher + ?Sized,
    {
        Ok(self
            .manifest(provider, matcher)
            .await?
            .manifest
            .config()
            .clone())
    }

    /// The parsed config of the platform's manifest.
    pub async fn read_config<P, M>(&self, provider: &P, matcher: &M) -> Result<ImageConfiguration>
    where
        P: Provider + ?Sized,
        M: Matcher + ?Sized,
    {
        let desc = self.config(provider, matcher).await?;
        let bytes = read_blob(provider, &desc, self.limits.max_config_size).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::decode(desc.digest().to_string(), "config", e))
    }

    /// The DiffIDs of the layers (digests of their uncompressed tar streams), bottom first.
    pub async fn rootfs<P, M>(&self, provider: &P, matcher: &M) -> Result<Vec<Digest>>
    where
        P: Provider + ?Sized,
        M: Matcher + ?Sized,
    {
        let config = self.read_config(provider, matcher).await?;
        config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| {
                Digest::from_str(d).map_err(|e| Error::Invalid {
                    what: format!("image {}", self.name),
                    reason: format!("diff_id {d:?}: {e}"),
                })
            })
            .collect()
    }

    /// The platform manifest's layers, bottom first, each paired with its DiffID from the
    /// config. Refuses (`InvalidArgument`) a manifest and config that list different
    /// numbers of layers, as containerd does, rather than pairing a prefix.
    pub async fn layers<P, M>(&self, provider: &P, matcher: &M) -> Result<Vec<Layer>>
    where
        P: Provider + ?Sized,
        M: Matcher + ?Sized,
    {
        let manifest = self.manifest(provider, matcher).await?;
        let diff_ids = self.rootfs(provider, matcher).await?;
        let blobs = manifest.manifest.layers();
        if blobs.len() != diff_ids.len() {
            return Err(Error::Invalid {
                what: format!("image {}", self.name),
                reason: format!(
                    "{} layers in the manifest but {} diff_ids in the config",
                    blobs.len(),
                    diff_ids.len()
                ),
            });
        }
        Ok(blobs
            .iter()
            .zip(diff_ids)
            .map(|(blob, diff_id)| Layer {
                diff_id,
                blob: blob.clone(),
            })
            .collect())
    }

    /// The bytes the platform's image takes in a store: manifest, config and each distinct
    /// layer (a layer listed twice counts once).
    pub async fn size<P, M>(&self, provider: &P, matcher: &M) -> Result<u64>
    where
        P: Provider + ?Sized,
        M: Matcher + ?Sized,
    {
        let m = self.manifest(provider, matcher).await?;
        let mut seen = HashSet::new();
        let blobs = std::iter::once(m.manifest.config()).chain(m.manifest.layers());
        let mut total = m.descriptor.size();
        for desc in blobs {
            if seen.insert(desc.digest()) {
                total = total.saturating_add(desc.size());
            }
        }
        Ok(total)
    }

    /// Which blobs of the platform's image `provider` holds. An absent index or manifest
    /// is reported as the single required and missing blob, since nothing below it can be
    /// known.
    pub async fn check<P, M>(&self, provider: &P, matcher: &M) -> Result<Check>
    where
        P: Provider + ?Sized,
        M: Matcher + ?Sized,
    {
        let m = match select(provider, &self.target, matcher, &self.limits, Vec::new()).await? {
            Some(Selected::Found(m)) => m,
            Some(Selected::Missing(desc)) => {
                return Ok(Check {
                    available: false,
                    required: vec![(*desc).clone()],
                    present: Vec::new(),
                    missing: vec![*desc],
                });
            }
            None => return Err(self.no_match()),
        };
        let mut seen = HashSet::new();
        let required: Vec<Descriptor> = std::iter::once(m.manifest.config())
            .chain(m.manifest.layers())
            .filter(|d| seen.insert(d.digest().clone()))
            .cloned()
            .collect();
        let (mut present, mut missing) = (Vec::new(), Vec::new());
        for desc in &required {
            match provider.reader_at(desc).await {
                Ok(_) => present.push(desc.clone()),
                Err(e) if e.kind() == ErrorKind::NotFound => missing.push(desc.clone()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Check {
            available: missing.is_empty(),
            required,
            present,
            missing,
        })
    }
}
