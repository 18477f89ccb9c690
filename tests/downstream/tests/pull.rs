//! A full pull through the public API alone, into this crate's own store, registry and
//! snapshotter: resolve, fetch with the library's handlers, pair layers with DiffIDs,
//! apply them, and check the files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use dist::images::platforms::default_platform;
use dist::images::{ErrorKind, FsImageStore, ImageStore};
use dist::images::{
    Handlers, Image, PlatformMatcher, children, dispatch, filter_platforms, limit_manifests,
};
use dist::remotes::{Fetcher, Resolver, fetch_handler};
use dist::rootfs::{ApplyOptions, Mount, SnapshotInfo, Snapshotter, apply_layers_with, chain_ids};
use dist_downstream::{DirSnapshotter, MemoryRegistry, MemoryStore, digest_of};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, MediaType, Platform};
use serde_json::json;

const NAME: &str = "registry.example/app:1";

fn sha256(data: &[u8]) -> Digest {
    digest_of(&DigestAlgorithm::Sha256, data).unwrap()
}

/// A gzipped tar of `entries` (path, contents; `None` makes a directory) and its DiffID.
fn layer(entries: &[(&str, Option<&str>)]) -> (Bytes, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents) in entries {
        let mut header = tar::Header::new_ustar();
        let data = contents.unwrap_or("").as_bytes();
        header.set_entry_type(if contents.is_some() {
            tar::EntryType::Regular
        } else {
            tar::EntryType::Directory
        });
        header.set_mode(if contents.is_some() { 0o644 } else { 0o755 });
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, path, data).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap().into(), sha256(&tar))
}

/// The test image as a registry holds it.
struct Fixture {
    tags: HashMap<String, Descriptor>,
    blobs: HashMap<Digest, Bytes>,
    diff_ids: Vec<Digest>,
    layers: Vec<Descriptor>,
}

impl Fixture {
    fn registry(&self) -> MemoryRegistry {
        MemoryRegistry::new(self.tags.clone(), self.blobs.clone())
    }
}

/// Test image: an index whose host manifest has two layers (the second with a whiteout and
/// an opaque directory); a manifest for another platform whose blobs the registry lacks.
fn image() -> Fixture {
    let mut blobs = HashMap::new();
    let mut add = |media_type: MediaType, data: Bytes| {
        let desc = Descriptor::new(media_type, data.len() as u64, sha256(&data));
        blobs.insert(desc.digest().clone(), data);
        desc
    };
    let (base, base_id) = layer(&[
        ("etc", None),
        ("etc/hello", Some("hello")),
        ("etc/gone", Some("bye")),
        ("var", None),
        ("var/old", Some("old")),
    ]);
    let (top, top_id) = layer(&[
        ("etc/.wh.gone", Some("")),
        ("etc/hello", Some("hello again")),
        ("var/.wh..wh..opq", Some("")),
        ("var/new", Some("new")),
    ]);
    let layers = [
        add(MediaType::ImageLayerGzip, base),
        add(MediaType::ImageLayerGzip, top),
    ];
    let host = default_platform();
    let config = json!({
        "architecture": host.architecture(), "os": host.os(),
        "rootfs": {"type": "layers", "diff_ids": [base_id, top_id]},
    });
    let config = add(
        MediaType::ImageConfig,
        serde_json::to_vec(&config).unwrap().into(),
    );
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MediaType::ImageManifest,
        "config": config, "layers": layers,
    });
    let mut manifest = add(
        MediaType::ImageManifest,
        serde_json::to_vec(&manifest).unwrap().into(),
    );
    manifest.set_platform(Some(host));
    // Not in the registry: fetching it would fail the pull.
    let mut other = Descriptor::new(MediaType::ImageManifest, 3, sha256(b"{}\n"));
    let plan9: Platform =
        serde_json::from_value(json!({"architecture": "amd64", "os": "plan9"})).unwrap();
    other.set_platform(Some(plan9));
    let index = json!({
        "schemaVersion": 2, "mediaType": MediaType::ImageIndex, "manifests": [other, manifest],
    });
    let index = add(
        MediaType::ImageIndex,
        serde_json::to_vec(&index).unwrap().into(),
    );
    Fixture {
        tags: HashMap::from([(NAME.to_owned(), index)]),
        blobs,
        diff_ids: vec![base_id, top_id],
        layers: layers.to_vec(),
    }
}

/// Resolve, then fetch the host platform's content into `store`.
async fn fetch(registry: &MemoryRegistry, store: &MemoryStore) -> dist::images::Result<Image> {
    let reference = dist::reference::normalize(NAME).unwrap();
    let (name, root) = registry.resolve(reference.as_str()).await.unwrap();
    let fetcher: Arc<dyn Fetcher> = Arc::from(registry.fetcher(&name).await.unwrap());
    let store = Arc::new(store.clone());
    let matcher = PlatformMatcher::host();
    let tree = limit_manifests(
        filter_platforms(children(store.clone()), matcher.clone()),
        matcher,
        1,
    );
    let handler = Handlers::new()
        .push(fetch_handler(store, fetcher))
        .push(tree);
    dispatch(&handler, std::slice::from_ref(&root), 4).await?;
    Ok(Image::new(name, root))
}

#[tokio::test]
async fn pull_into_own_store_and_snapshotter_yields_the_merged_rootfs() {
    let fixture = image();
    let diff_ids = fixture.diff_ids.clone();
    let store = MemoryStore::default();
    let image = fetch(&fixture.registry(), &store).await.unwrap();
    assert_eq!(
        store.len(),
        5,
        "index, manifest, config and two layers; not the other platform"
    );

    let layers = image
        .layers(&store, &PlatformMatcher::host())
        .await
        .unwrap();
    assert_eq!(
        layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        diff_ids
    );
    let dir = tempfile::tempdir().unwrap();
    let snapshotter = DirSnapshotter::new(dir.path());
    let options = ApplyOptions::default().same_owner(false); // as a rootless runtime would
    let top = apply_layers_with(&layers, &snapshotter, &store, options)
        .await
        .unwrap();
    assert_eq!(Some(&top), chain_ids(&diff_ids).last());

    let mounts = snapshotter
        .view("rootfs", Some(top.as_ref()))
        .await
        .unwrap();
    assert!(
        Mount::apply_target(&mounts).is_none(),
        "a view is read-only"
    );
    let rootfs = &mounts[0].source;
    let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).ok();
    assert_eq!(read("etc/hello").as_deref(), Some("hello again"));
    assert_eq!(read("var/new").as_deref(), Some("new"));
    for hidden in ["etc/gone", "etc/.wh.gone", "var/old", "var/.wh..wh..opq"] {
        assert!(!rootfs.join(hidden).exists(), "{hidden} should be gone");
    }

    // Record the name, as a pull ends; pulling again updates the record in place.
    let images = FsImageStore::open(dir.path().join("images")).unwrap();
    let created = images.create_or_update(image.clone()).await.unwrap();
    let updated = images.create_or_update(image).await.unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.created),
        (NAME, created.created)
    );

    // Applying again finds the chain committed and makes no snapshot.
    let again = apply_layers_with(&layers, &snapshotter, &store, ApplyOptions::default()).await;
    assert_eq!(again.unwrap(), top);
    let mut names = Vec::new();
    let mut collect = |info: SnapshotInfo| {
        names.push(info.name);
        Ok(())
    };
    snapshotter.walk(&mut collect).await.unwrap();
    names.sort();
    let mut expected: Vec<String> = chain_ids(&diff_ids).iter().map(|c| c.to_string()).collect();
    expected.push("rootfs".to_owned());
    expected.sort();
    assert_eq!(names, expected, "two committed layers and the view");
}

#[tokio::test]
async fn corrupt_blob_in_the_registry_fails_the_pull_and_is_never_stored() {
    let mut fixture = image();
    // Same length, other bytes: only the digest check can tell.
    let layer = fixture.layers[1].clone();
    let mut bytes = fixture.blobs[layer.digest()].to_vec();
    let last = bytes.last_mut().unwrap();
    *last ^= 0xff;
    fixture.blobs.insert(layer.digest().clone(), bytes.into());

    let store = MemoryStore::default();
    let pulled = fetch(&fixture.registry(), &store).await;
    let err = pulled.expect_err("pulled corrupt content");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(store.get(layer.digest()).is_none());

    // The fetcher alone refuses a descriptor whose size disagrees with the blob.
    let registry = image().registry();
    let fetcher = registry.fetcher(NAME).await.unwrap();
    let short = Descriptor::new(
        layer.media_type().clone(),
        layer.size() - 1,
        layer.digest().clone(),
    );
    let err = fetcher
        .fetch(&short)
        .await
        .err()
        .expect("served the wrong size");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
}
