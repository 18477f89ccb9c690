//! Garbage-collection references, with containerd's label names, so that a tool that knows
//! containerd's collector reads the same graph from our store.
//!
//! A stored manifest or index names what it references in its labels
//! ([`set_children_labels`]); an unpacked image's config names its top snapshot
//! ([`snapshot_gc_label`]); [`LABEL_GC_ROOT`] marks a root. The collector
//! (`dist_rootfs::collect_garbage`) follows these labels and never reads a layer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use dist_content::{Lease, Manager, Provider, Resource};
use oci_spec::image::Descriptor;

use crate::media_types::{self, MediaKind};
use crate::{Handler, Limits, Result, children_of_with};

pub use dist_content::LABEL_GC_EXPIRE;

/// Marks a blob as a root: it, and what its labels reference, are kept.
pub const LABEL_GC_ROOT: &str = "containerd.io/gc.root";
/// Prefix of every reference label.
pub const LABEL_GC_REF_PREFIX: &str = "containerd.io/gc.ref.";
/// Prefix of the labels that reference content by digest (the value).
pub const LABEL_GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// A manifest's config.
pub const LABEL_GC_REF_CONFIG: &str = "containerd.io/gc.ref.content.config";
/// Prefix of a manifest's layers, numbered from 0 in manifest order.
pub const LABEL_GC_REF_LAYER_PREFIX: &str = "containerd.io/gc.ref.content.l.";
/// Prefix of an index's manifests, numbered from 0 in index order.
pub const LABEL_GC_REF_MANIFEST_PREFIX: &str = "containerd.io/gc.ref.content.m.";
/// Prefix of referrers (descriptors carrying [`ANNOTATION_MANIFEST_SUBJECT`]), followed by
/// the first 12 hex digits of the referrer's digest.
pub const LABEL_GC_REF_REFERRER_PREFIX: &str = "containerd.io/gc.ref.content.referrer.sha256.";
/// Prefix of any other child (nested indexes, artifacts), numbered from 0.
pub const LABEL_GC_REF_OTHER_PREFIX: &str = "containerd.io/gc.ref.content.";
/// Prefix of the label an unpacked image's config carries: `<prefix><snapshotter>` = the
/// top snapshot's key (its ChainID).
pub const LABEL_GC_REF_SNAPSHOT_PREFIX: &str = "containerd.io/gc.ref.snapshot.";
/// The annotation containerd puts on a referrer's descriptor, naming its subject.
pub const ANNOTATION_MANIFEST_SUBJECT: &str = "io.containerd.manifest.subject";

/// The label key, before numbering, that references `child` (containerd's
/// `ChildGCLabels`).
pub fn child_gc_label(child: &Descriptor) -> &'static str {
    let is_referrer = child
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(ANNOTATION_MANIFEST_SUBJECT));
    if is_referrer {
        return LABEL_GC_REF_REFERRER_PREFIX;
    }
    match media_types::kind(child.media_type()) {
        MediaKind::Config => LABEL_GC_REF_CONFIG,
        MediaKind::Manifest => LABEL_GC_REF_MANIFEST_PREFIX,
        MediaKind::Layer { .. } => LABEL_GC_REF_LAYER_PREFIX,
        _ => LABEL_GC_REF_OTHER_PREFIX,
    }
}

/// The reference labels a parent with `children` carries, numbered as containerd numbers
/// them: per key, the first child of a key that does not end in `.` keeps the bare key,
/// every other gets its index under that key appended; referrers get their digest's first
/// 12 hex digits instead.
pub fn children_gc_labels(children: &[Descriptor]) -> HashMap<String, String> {
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut labels = HashMap::with_capacity(children.len());
    for child in children {
        let base = child_gc_label(child);
        let idx = counts.entry(base).or_insert(0);
        let key = if base == LABEL_GC_REF_REFERRER_PREFIX {
            let hex = child.digest().digest();
            format!("{base}{}", hex.get(..12).unwrap_or(hex))
        } else if *idx > 0 || base.ends_with('.') {
            format!("{base}{idx}")
        } else {
            base.to_owned()
        };
        *idx += 1;
        labels.insert(key, child.digest().to_string());
    }
    labels
}

/// The label key on an image config that references its top snapshot in `snapshotter`.
pub fn snapshot_gc_label(snapshotter: &str) -> String {
    format!("{LABEL_GC_REF_SNAPSHOT_PREFIX}{snapshotter}")
}

/// Adds `labels` to the blob `digest`, keeping its other labels ([`Manager::add_labels`]:
/// atomic in a [`LocalStore`](dist_content::LocalStore)); writes nothing when they are all
/// there already.
pub async fn add_labels(
    manager: &(impl Manager + ?Sized),
    digest: &oci_spec::image::Digest,
    labels: HashMap<String, String>,
) -> Result<()> {
    manager.add_labels(digest, labels).await?;
    Ok(())
}

/// Records on the image config `config` that its unpacked top snapshot in `snapshotter`
/// is `key` (`containerd.io/gc.ref.snapshot.<snapshotter>=<key>`), as containerd's
/// unpacker does: the image then keeps its snapshots.
pub async fn label_snapshot(
    manager: &(impl Manager + ?Sized),
    config: &oci_spec::image::Digest,
    snapshotter: &str,
    key: &str,
) -> Result<()> {
    let label = HashMap::from([(snapshot_gc_label(snapshotter), key.to_owned())]);
    add_labels(manager, config, label).await
}

/// The handler returned by [`set_children_labels`].
#[derive(Debug, Clone)]
pub struct SetChildrenLabels<H, M: ?Sized> {
    inner: H,
    manager: Arc<M>,
}

/// Wraps a handler that returns children (usually [`children`](crate::children)): after
/// it, records on the handled blob a reference label per child ([`children_gc_labels`])
/// and passes the children through, as containerd's `SetChildrenLabels`. Put it inside
/// platform filters, as containerd does, so that an index references all its manifests.
pub fn set_children_labels<H: Handler, M: Manager + ?Sized>(
    manager: Arc<M>,
    inner: H,
) -> SetChildrenLabels<H, M> {
    SetChildrenLabels { inner, manager }
}

#[async_trait]
impl<H: Handler, M: Manager + ?Sized> Handler for SetChildrenLabels<H, M> {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        let children = self.inner.handle(desc).await?;
        if !children.is_empty() {
            add_labels(&*self.manager, desc.digest(), children_gc_labels(&children)).await?;
        }
        Ok(children)
    }
}

/// Labels every manifest and index reachable from `roots` in `store` with what it
/// references, as [`set_children_labels`] does during a fetch, for content that arrived
/// another way (an archive import). Children the store lacks (platforms an archive left
/// out) are labelled on their parent but not descended into; layers and configs are
/// never read. Each object is visited once.
pub async fn label_stored_graph<S: Provider + Manager + ?Sized>(
    store: &S,
    roots: &[Descriptor],
    limits: &Limits,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut todo: Vec<Descriptor> = roots.to_vec();
    while let Some(desc) = todo.pop() {
        if !media_types::is_manifest_or_index(desc.media_type())
            || !seen.insert(desc.digest().clone())
        {
            continue;
        }
        match store.info(desc.digest()).await {
            Ok(_) => {}
            Err(e) if e.kind() == dist_content::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
        let children = children_of_with(store, &desc, limits).await?;
        if !children.is_empty() {
            add_labels(store, desc.digest(), children_gc_labels(&children)).await?;
        }
        todo.extend(children);
    }
    Ok(())
}

/// The handler returned by [`attach_to_lease`].
pub struct AttachToLease {
    lease: Arc<Lease>,
    ingest_ref: fn(&Descriptor) -> String,
}

impl std::fmt::Debug for AttachToLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachToLease")
            .field("lease", &self.lease.id())
            .finish()
    }
}

/// A handler that adds each descriptor's content, and the ingest its fetch writes
/// (`ingest_ref` names it, e.g. `dist_remotes::ref_key`), to `lease`, and returns no
/// children. Put it before the fetch handler: what is fetched is leased before it exists.
pub fn attach_to_lease(lease: Arc<Lease>, ingest_ref: fn(&Descriptor) -> String) -> AttachToLease {
    AttachToLease { lease, ingest_ref }
}

#[async_trait]
impl Handler for AttachToLease {
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        let resources = [
            Resource::content(desc.digest()),
            Resource::ingest((self.ingest_ref)(desc)),
        ];
        self.lease.attach(&resources).await?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Digest, MediaType};
    use std::str::FromStr;

    fn desc(mt: MediaType, n: u8) -> Descriptor {
        let digest = Digest::from_str(&format!("sha256:{}", format!("{n:02x}").repeat(32)));
        Descriptor::new(mt, 1, digest.unwrap())
    }

    #[test]
    fn manifest_children_are_labelled_config_then_numbered_layers() {
        let children = [
            desc(MediaType::ImageConfig, 1),
            desc(MediaType::ImageLayerGzip, 2),
            desc(MediaType::ImageLayerGzip, 3),
        ];
        let labels = children_gc_labels(&children);
        assert_eq!(labels.len(), 3);
        assert_eq!(
            labels[LABEL_GC_REF_CONFIG],
            children[0].digest().to_string()
        );
        assert_eq!(
            labels["containerd.io/gc.ref.content.l.0"],
            children[1].digest().to_string()
        );
        assert_eq!(
            labels["containerd.io/gc.ref.content.l.1"],
            children[2].digest().to_string()
        );
    }

    #[test]
    fn index_children_are_numbered_manifests_and_others_and_referrers_by_digest() {
        let mut referrer = desc(MediaType::ImageManifest, 9);
        referrer.set_annotations(Some(HashMap::from([(
            ANNOTATION_MANIFEST_SUBJECT.to_owned(),
            "sha256:abc".to_owned(),
        )])));
        let children = [
            desc(MediaType::ImageManifest, 1),
            desc(MediaType::ImageIndex, 2),
            desc(MediaType::ImageManifest, 3),
            referrer,
        ];
        let labels = children_gc_labels(&children);
        let keys: std::collections::BTreeSet<_> = labels.keys().cloned().collect();
        let want = [
            "containerd.io/gc.ref.content.0",
            "containerd.io/gc.ref.content.m.0",
            "containerd.io/gc.ref.content.m.1",
            "containerd.io/gc.ref.content.referrer.sha256.090909090909",
        ];
        assert_eq!(keys.iter().map(String::as_str).collect::<Vec<_>>(), want);
        assert_eq!(
            labels["containerd.io/gc.ref.content.m.1"],
            children[2].digest().to_string()
        );
    }

    #[test]
    fn a_second_config_is_numbered() {
        let children = [
            desc(MediaType::ImageConfig, 1),
            desc(MediaType::ImageConfig, 2),
        ];
        let labels = children_gc_labels(&children);
        assert!(labels.contains_key("containerd.io/gc.ref.content.config"));
        assert!(labels.contains_key("containerd.io/gc.ref.content.config1"));
    }

    #[tokio::test]
    async fn the_handler_records_children_on_the_parent_and_keeps_other_labels() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(dist_content::LocalStore::open(tmp.path()).unwrap());
        let parent_bytes = b"parent";
        let parent = dist_content::sha256_of(parent_bytes);
        dist_content::write_blob(
            &*store,
            "p",
            &Descriptor::new(MediaType::ImageManifest, 6, parent.clone()),
            &parent_bytes[..],
        )
        .await
        .unwrap();
        let other = HashMap::from([("keep".to_owned(), "me".to_owned())]);
        store.update_labels(&parent, other).await.unwrap();
        let kids = vec![
            desc(MediaType::ImageConfig, 1),
            desc(MediaType::ImageLayer, 2),
        ];
        let inner = crate::HandlerFunc::new(move |_| {
            let kids = kids.clone();
            async move { Ok(kids) }
        });
        let h = set_children_labels(store.clone(), inner);
        let parent_desc = Descriptor::new(MediaType::ImageManifest, 6, parent.clone());
        assert_eq!(h.handle(&parent_desc).await.unwrap().len(), 2);
        let labels = store.info(&parent).await.unwrap().labels;
        assert_eq!(labels["keep"], "me");
        assert!(labels.contains_key(LABEL_GC_REF_CONFIG));
        assert!(labels.contains_key("containerd.io/gc.ref.content.l.0"));
    }

    #[tokio::test]
    async fn a_stored_graph_is_labelled_and_absent_children_are_not_descended_into() {
        use dist_content::{LocalStore, write_blob};
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let put = |mt: MediaType, bytes: Vec<u8>| {
            let store = store.clone();
            async move {
                let d = Descriptor::new(mt, bytes.len() as u64, dist_content::sha256_of(&bytes));
                write_blob(&store, "t", &d, &bytes[..]).await.unwrap();
                d
            }
        };
        let config = put(MediaType::ImageConfig, b"{}".to_vec()).await;
        let layer = put(MediaType::ImageLayerGzip, b"layer".to_vec()).await;
        let manifest = serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": [layer]});
        let manifest = put(
            MediaType::ImageManifest,
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
        let absent = desc(MediaType::ImageManifest, 9);
        let index = serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [manifest, absent]});
        let index = put(MediaType::ImageIndex, serde_json::to_vec(&index).unwrap()).await;

        label_stored_graph(&store, std::slice::from_ref(&index), &Limits::default())
            .await
            .unwrap();
        let labels = store.info(index.digest()).await.unwrap().labels;
        assert_eq!(
            labels["containerd.io/gc.ref.content.m.0"],
            manifest.digest().to_string()
        );
        assert_eq!(
            labels["containerd.io/gc.ref.content.m.1"],
            absent.digest().to_string()
        );
        let labels = store.info(manifest.digest()).await.unwrap().labels;
        assert_eq!(labels[LABEL_GC_REF_CONFIG], config.digest().to_string());
        assert_eq!(
            labels["containerd.io/gc.ref.content.l.0"],
            layer.digest().to_string()
        );
        assert!(store.info(layer.digest()).await.unwrap().labels.is_empty());
    }
}
