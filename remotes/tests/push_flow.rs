//! The push flow (`push`, `push_handler`) and the source-label handler, with a recording
//! `Pusher` over a `LocalStore`: order, concurrency, platform choice, missing content,
//! and containerd's `distribution.source` labels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dist_content::{LocalStore, Manager, Provider};
use dist_images::media_types::{self, MediaKind};
use dist_images::{Handler, Handlers, PlatformMatcher, platforms};
use dist_remotes::{
    DISTRIBUTION_SOURCE_PREFIX, ErrorKind, PushEvent, PushObserver, PushOptions, PushOutcome,
    PushPlatforms, Pusher, Result, push, source_label_handler,
};
use dist_test_support::{Built, OciLayout, Platform};
use oci_spec::image::{Descriptor, ImageIndexBuilder, MediaType};

/// Records what it is asked to push, how many pushes overlapped, and the annotations.
#[derive(Default)]
struct Recorder {
    order: Mutex<Vec<Descriptor>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl Pusher for Recorder {
    async fn push(&self, desc: &Descriptor, provider: &dyn Provider) -> Result<PushOutcome> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // The bytes must be readable from the provider, as a real pusher reads them.
        provider.reader_at(desc).await?;
        tokio::time::sleep(self.delay).await;
        self.order.lock().unwrap().push(desc.clone());
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(PushOutcome::Pushed)
    }
}

impl Recorder {
    fn order(&self) -> Vec<Descriptor> {
        self.order.lock().unwrap().clone()
    }
}

/// Copies every blob of `layout` into a fresh store.
async fn store_of(layout: &OciLayout, skip: &[&Descriptor]) -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    for entry in std::fs::read_dir(layout.path().join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let digest = dist_content::sha256_of(&bytes);
        if skip.iter().any(|d| d.digest() == &digest) {
            continue;
        }
        let desc = Descriptor::new(MediaType::ImageLayer, bytes.len() as u64, digest);
        dist_content::write_blob(&store, "test", &desc, &bytes[..])
            .await
            .unwrap();
    }
    (dir, store)
}

fn kind(d: &Descriptor) -> MediaKind {
    media_types::kind(d.media_type())
}

/// An index over `inner` (another index) and one more image manifest.
fn nested(layout: &mut OciLayout) -> (Built, Built, Built) {
    let inner = layout
        .add_index(
            "inner",
            &[
                Platform::new("linux", "amd64"),
                Platform::new("linux", "arm64"),
            ],
        )
        .unwrap();
    let single = layout
        .add_image(None, &Platform::new("linux", "s390x"), &[("s.txt", b"s")])
        .unwrap();
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![inner.root.clone(), single.root.clone()])
        .build()
        .unwrap();
    let bytes = serde_json::to_vec(&index).unwrap();
    let root = layout.add_blob(MediaType::ImageIndex, &bytes).unwrap();
    let outer = Built {
        root,
        root_bytes: bytes,
        children: vec![inner.root.clone(), single.root.clone()],
    };
    (outer, inner, single)
}

#[tokio::test]
async fn children_are_pushed_before_parents_and_indexes_innermost_first() {
    let mut layout = OciLayout::new().unwrap();
    let (outer, inner, _) = nested(&mut layout);
    let (_dir, store) = store_of(&layout, &[]).await;
    let rec = Arc::new(Recorder::default());
    let opts = PushOptions::new().with_platforms(PushPlatforms::All);
    push(&outer.root, Arc::new(store), rec.clone(), &opts)
        .await
        .unwrap();

    let order = rec.order();
    // 3 manifests with a config and a layer each, 3 manifests, 2 indexes.
    assert_eq!(order.len(), 3 * 2 + 3 + 2, "{order:?}");
    let kinds: Vec<MediaKind> = order.iter().map(kind).collect();
    let first_manifest = kinds
        .iter()
        .position(|k| *k == MediaKind::Manifest)
        .unwrap();
    let first_index = kinds.iter().position(|k| *k == MediaKind::Index).unwrap();
    assert!(
        kinds[..first_manifest]
            .iter()
            .all(|k| matches!(k, MediaKind::Config | MediaKind::Layer { .. })),
        "{kinds:?}"
    );
    assert!(
        kinds[first_manifest..first_index]
            .iter()
            .all(|k| *k == MediaKind::Manifest),
        "{kinds:?}"
    );
    assert_eq!(
        order[first_index..]
            .iter()
            .map(|d| d.digest().clone())
            .collect::<Vec<_>>(),
        [inner.root.digest().clone(), outer.root.digest().clone()],
        "the inner index goes before the outer one"
    );
}

#[tokio::test]
async fn blob_pushes_run_concurrently_up_to_the_limit() {
    let mut layout = OciLayout::new().unwrap();
    let layers: Vec<(Vec<u8>, String)> = (0..6u8)
        .map(|i| OciLayout::tar_gz(&[("f", &[i][..])]).unwrap())
        .collect();
    let img = layout
        .add_image_with_layers(Some("v"), &Platform::new("linux", "amd64"), &layers)
        .unwrap();
    let (_dir, store) = store_of(&layout, &[]).await;
    let store = Arc::new(store);
    for limit in [1, 3] {
        let rec = Arc::new(Recorder {
            delay: Duration::from_millis(40),
            ..Recorder::default()
        });
        let opts = PushOptions::new().with_concurrency(limit);
        push(&img.root, store.clone(), rec.clone(), &opts)
            .await
            .unwrap();
        assert_eq!(rec.order().len(), 8);
        assert_eq!(
            rec.max_in_flight.load(Ordering::SeqCst),
            limit,
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn a_missing_layer_is_a_not_found_error_naming_it_and_nothing_is_pushed() {
    let mut layout = OciLayout::new().unwrap();
    let img = layout
        .add_image(Some("v"), &Platform::new("linux", "amd64"), &[("a", b"a")])
        .unwrap();
    let layer = &img.children[1];
    let (_dir, store) = store_of(&layout, &[layer]).await;
    let rec = Arc::new(Recorder::default());
    let err = push(&img.root, Arc::new(store), rec.clone(), &PushOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(layer.digest().as_ref()), "{err}");
    assert!(
        rec.order().is_empty(),
        "pushed before the check: {:?}",
        rec.order()
    );
}

#[tokio::test]
async fn index_platforms_default_to_the_stored_ones_and_requested_missing_ones_fail() {
    let mut layout = OciLayout::new().unwrap();
    let idx = layout
        .add_index(
            "multi",
            &[
                Platform::new("linux", "amd64"),
                Platform::new("linux", "arm64"),
            ],
        )
        .unwrap();
    let (amd64, arm64) = (&idx.children[0], &idx.children[1]);
    let (_dir, store) = store_of(&layout, &[arm64]).await;
    let store = Arc::new(store);

    // Default: only what the store holds (amd64's config, layer, manifest, the index).
    let rec = Arc::new(Recorder::default());
    push(&idx.root, store.clone(), rec.clone(), &PushOptions::new())
        .await
        .unwrap();
    let pushed: Vec<_> = rec.order().iter().map(|d| d.digest().clone()).collect();
    assert_eq!(pushed.len(), 4, "{pushed:?}");
    assert!(pushed.contains(amd64.digest()) && !pushed.contains(arm64.digest()));

    // Every platform, or arm64 by name: the missing manifest is named.
    let arm = PlatformMatcher::exact(&platforms::parse("linux/arm64").unwrap());
    for platforms in [PushPlatforms::All, PushPlatforms::Matching(arm)] {
        let rec = Arc::new(Recorder::default());
        let opts = PushOptions::new().with_platforms(platforms.clone());
        let err = push(&idx.root, store.clone(), rec.clone(), &opts)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{platforms:?}: {err}");
        assert!(err.to_string().contains(arm64.digest().as_ref()), "{err}");
        assert!(rec.order().is_empty());
    }

    // A platform the index does not have at all.
    let none = PlatformMatcher::exact(&platforms::parse("linux/ppc64le").unwrap());
    let opts = PushOptions::new().with_platforms(PushPlatforms::Matching(none));
    let err = push(&idx.root, store, Arc::new(Recorder::default()), &opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains(idx.root.digest().as_ref()),
        "{err}"
    );
}

/// Collects the outcomes a push reports.
#[derive(Default)]
struct Outcomes(Mutex<Vec<(Descriptor, PushOutcome, u64)>>);

impl PushObserver for Outcomes {
    fn on_event(&self, event: &PushEvent) {
        if let PushEvent::Done {
            desc,
            outcome,
            bytes,
            ..
        } = event
        {
            self.0
                .lock()
                .unwrap()
                .push((desc.clone(), *outcome, *bytes));
        }
    }
}

#[tokio::test]
async fn source_labels_follow_containerds_format_reach_the_pusher_and_gain_the_destination() {
    let mut layout = OciLayout::new().unwrap();
    let img = layout
        .add_image(Some("v"), &Platform::new("linux", "amd64"), &[("a", b"a")])
        .unwrap();
    let (_dir, store) = store_of(&layout, &[]).await;
    let store = Arc::new(store);
    let layer = &img.children[1];
    store
        .update_labels(
            layer.digest(),
            HashMap::from([("keep".to_string(), "me".to_string())]),
        )
        .await
        .unwrap();

    // As a pull chain runs it: fetch (here: already stored), then record the source.
    for name in [
        "localhost:5000/library/redis:latest",
        "localhost:5000/team/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "localhost:5000/library/redis:other",
        "docker.io/library/redis:7",
    ] {
        let labels = source_label_handler(store.clone(), name).unwrap();
        let stored = dist_images::HandlerFunc::new(|_| async { Ok(Vec::new()) });
        let chain = Handlers::new().push(stored).push(labels);
        chain.handle(layer).await.unwrap();
    }
    let labels = store.info(layer.digest()).await.unwrap().labels;
    let expected = HashMap::from([
        ("keep".to_string(), "me".to_string()),
        (
            "containerd.io/distribution.source.localhost".to_string(),
            "library/redis,team/app".to_string(),
        ),
        (
            "containerd.io/distribution.source.docker.io".to_string(),
            "library/redis".to_string(),
        ),
    ]);
    assert_eq!(labels, expected);

    // The push flow hands those labels to the pusher as the layer's annotations.
    let rec = Arc::new(Recorder::default());
    let outcomes = Arc::new(Outcomes::default());
    let destination = source_label_handler(store.clone(), "localhost:5000/pushed/app:v1").unwrap();
    let opts = PushOptions::new()
        .with_source_labels(store.clone())
        .with_observer(outcomes.clone())
        .with_destination_label(Arc::new(destination));
    push(&img.root, store.clone(), rec.clone(), &opts)
        .await
        .unwrap();
    let pushed = rec.order();
    let seen = pushed
        .iter()
        .find(|d| d.digest() == layer.digest())
        .unwrap();
    let sources: HashMap<String, String> = seen
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k.starts_with(DISTRIBUTION_SOURCE_PREFIX))
        .collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert_eq!(
        sources["containerd.io/distribution.source.localhost"],
        "library/redis,team/app"
    );
    // Once pushed, the destination is a source too (as containerd labels after a push).
    let labels = store.info(layer.digest()).await.unwrap().labels;
    assert_eq!(
        labels["containerd.io/distribution.source.localhost"],
        "library/redis,pushed/app,team/app"
    );
    for d in std::iter::once(&img.root).chain(&img.children) {
        let labels = store.info(d.digest()).await.unwrap().labels;
        let v = labels.get("containerd.io/distribution.source.localhost");
        assert!(
            v.is_some_and(|v| v.contains("pushed/app")),
            "{}: {labels:?}",
            d.digest()
        );
    }
    let outcomes = outcomes.0.lock().unwrap();
    assert_eq!(outcomes.len(), 3);
    let layer_outcome = outcomes.iter().find(|(d, ..)| d.digest() == layer.digest());
    assert_eq!(
        layer_outcome.map(|(_, o, b)| (*o, *b)),
        Some((PushOutcome::Pushed, layer.size()))
    );
}
