//! The mark phase: every blob and snapshot reachable from a root.

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::time::SystemTime;

use dist_content::{ErrorKind, Filter, Store, parse_expire};
use dist_images::gc::{
    LABEL_GC_REF_CONFIG, LABEL_GC_REF_CONTENT, LABEL_GC_REF_MANIFEST_PREFIX,
    LABEL_GC_REF_SNAPSHOT_PREFIX, LABEL_GC_ROOT,
};
use dist_images::media_types::{self, MediaKind};
use dist_images::{ImageStore, children_of_with};
use oci_spec::image::{Descriptor, Digest, MediaType};

use super::{GcOptions, LeaseRoots};
use crate::Result;

/// What the walk of the content store found out about one blob.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) created_at: SystemTime,
    pub(crate) labels: HashMap<String, String>,
}

/// Every committed blob, by digest string: one walk of the store, labels included.
pub(crate) async fn all_blobs(content: &dyn Store) -> Result<HashMap<String, Blob>> {
    let mut blobs = HashMap::new();
    content
        .walk(&Filter::all(), &mut |info| {
            let blob = Blob {
                digest: info.digest,
                size: info.size,
                created_at: info.created_at,
                labels: info.labels,
            };
            blobs.insert(blob.digest.to_string(), blob);
            Ok(())
        })
        .await?;
    Ok(blobs)
}

/// What the mark reached.
#[derive(Debug, Default)]
pub(crate) struct Marked {
    /// Digests (as strings) of reachable blobs, present or not.
    pub(crate) content: HashSet<String>,
    /// Snapshot keys by snapshotter name.
    pub(crate) snapshots: HashMap<String, HashSet<String>>,
}

/// Marks from image records, `gc.root` labels and live leases.
pub(crate) async fn mark(
    content: &dyn Store,
    images: &dyn ImageStore,
    blobs: &HashMap<String, Blob>,
    leases: &LeaseRoots,
    now: SystemTime,
    opts: &GcOptions,
) -> Result<Marked> {
    let mut marked = Marked::default();
    for (name, keys) in &leases.snapshots {
        marked
            .snapshots
            .entry(name.clone())
            .or_default()
            .extend(keys.iter().cloned());
    }
    // (digest, what the referrer says it is): the kind decides whether a blob without
    // labels is parsed for its children.
    let mut queue: VecDeque<(String, MediaKind)> = VecDeque::new();
    for image in images.list().await? {
        let target = image.target;
        queue.push_back((
            target.digest().to_string(),
            media_types::kind(target.media_type()),
        ));
    }
    for (digest, blob) in blobs {
        let expired = parse_expire(&blob.labels).is_some_and(|t| t <= now);
        if blob.labels.contains_key(LABEL_GC_ROOT) && !expired {
            queue.push_back((digest.clone(), MediaKind::Unknown));
        }
    }
    queue.extend(
        leases
            .content
            .iter()
            .map(|d| (d.clone(), MediaKind::Unknown)),
    );

    while let Some((digest, kind)) = queue.pop_front() {
        if !marked.content.insert(digest.clone()) {
            continue;
        }
        let Some(blob) = blobs.get(&digest) else {
            continue; // referenced but not (or not yet) stored
        };
        let mut has_content_refs = false;
        for (key, value) in &blob.labels {
            if let Some(snapshotter) = key.strip_prefix(LABEL_GC_REF_SNAPSHOT_PREFIX) {
                let keys = marked.snapshots.entry(snapshotter.to_owned()).or_default();
                keys.insert(value.clone());
            } else if key.starts_with(LABEL_GC_REF_CONTENT) {
                has_content_refs = true;
                if Digest::from_str(value).is_ok() && !marked.content.contains(value) {
                    queue.push_back((value.clone(), kind_of_label(key)));
                }
            }
        }
        if has_content_refs || !matches!(kind, MediaKind::Manifest | MediaKind::Index) {
            continue;
        }
        // A manifest or index stored without reference labels: read its children.
        let media_type = match kind {
            MediaKind::Index => MediaType::ImageIndex,
            _ => MediaType::ImageManifest,
        };
        let desc = Descriptor::new(media_type, blob.size, blob.digest.clone());
        match children_of_with(content, &desc, &opts.limits).await {
            Ok(children) => {
                for child in children {
                    let d = child.digest().to_string();
                    if !marked.content.contains(&d) {
                        queue.push_back((d, media_types::kind(child.media_type())));
                    }
                }
            }
            // Deleted meanwhile by a user: nothing below it to keep.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(marked)
}

/// What a reference label says its target is.
fn kind_of_label(key: &str) -> MediaKind {
    if key == LABEL_GC_REF_CONFIG {
        MediaKind::Config
    } else if key.starts_with(LABEL_GC_REF_MANIFEST_PREFIX) {
        MediaKind::Manifest
    } else {
        // Layers, nested indexes, artifacts: followed by their labels only.
        MediaKind::Unknown
    }
}
