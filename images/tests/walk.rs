//! walk and dispatch over images stored in a real content store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Fixture, multi_platform, plat};
use dist_images::{
    Error, Handler, HandlerFunc, Handlers, PlatformMatcher, children, dispatch, filter_platforms,
    limit_manifests, walk,
};
use oci_spec::image::{Descriptor, Digest};

type Log = Arc<Mutex<Vec<Digest>>>;

/// A handler that records each descriptor, followed by the children handler.
fn recording(fx: &Fixture) -> (Handlers, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let record = HandlerFunc::new(move |d: Descriptor| {
        let l = l.clone();
        async move {
            l.lock().unwrap().push(d.digest().clone());
            Ok(Vec::new())
        }
    });
    (
        Handlers::new()
            .push(record)
            .push(children(fx.store.clone())),
        log,
    )
}

fn digests(descs: &[Descriptor]) -> Vec<Digest> {
    descs.iter().map(|d| d.digest().clone()).collect()
}

fn counts(log: &Log) -> HashMap<Digest, usize> {
    let mut m = HashMap::new();
    for d in log.lock().unwrap().iter() {
        *m.entry(d.clone()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn walk_visits_a_single_manifest_then_its_config_then_layers_in_order() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let (h, log) = recording(&fx);
    walk(&h, std::slice::from_ref(&img.manifest)).await.unwrap();
    assert_eq!(*log.lock().unwrap(), digests(&img.all()));
}

#[tokio::test]
async fn walk_visits_a_multi_platform_index_depth_first_in_index_order() {
    let fx = Fixture::new();
    let (index, built) = multi_platform(&fx).await;
    let (h, log) = recording(&fx);
    walk(&h, std::slice::from_ref(&index)).await.unwrap();
    let mut expected = vec![index.digest().clone()];
    for b in &built {
        expected.extend(digests(&b.all()));
    }
    assert_eq!(*log.lock().unwrap(), expected);
}

#[tokio::test]
async fn dispatch_handles_every_descriptor_of_a_multi_platform_index_once() {
    let fx = Fixture::new();
    let (index, built) = multi_platform(&fx).await;
    let (h, log) = recording(&fx);
    dispatch(&h, std::slice::from_ref(&index), 3).await.unwrap();
    let got = counts(&log);
    let mut expected = vec![index.digest().clone()];
    for b in &built {
        expected.extend(digests(&b.all()));
    }
    assert_eq!(got.len(), expected.len());
    assert!(expected.iter().all(|d| got.get(d) == Some(&1)));
}

#[tokio::test]
async fn filter_platforms_keeps_the_platform_and_what_it_can_run() {
    let fx = Fixture::new();
    let (index, built) = multi_platform(&fx).await;
    let (h, log) = recording(&fx);
    let arm64 = PlatformMatcher::new(&plat("linux/arm64"));
    dispatch(&filter_platforms(h, arm64), std::slice::from_ref(&index), 4)
        .await
        .unwrap();
    let got = counts(&log);
    // arm64/v8 runs arm/v7 too; amd64 and windows are dropped.
    assert!(got.contains_key(built[1].manifest.digest()));
    assert!(got.contains_key(built[2].manifest.digest()));
    assert!(!got.contains_key(built[0].manifest.digest()));
    assert!(!got.contains_key(built[3].manifest.digest()));
    assert_eq!(got.len(), 1 + 4 + 4);
}

#[tokio::test]
async fn limit_manifests_keeps_only_the_best_platform() {
    let fx = Fixture::new();
    let (index, built) = multi_platform(&fx).await;
    let (h, log) = recording(&fx);
    let arm64 = PlatformMatcher::new(&plat("linux/arm64/v8"));
    let h = limit_manifests(filter_platforms(h, arm64.clone()), arm64, 1);
    walk(&h, std::slice::from_ref(&index)).await.unwrap();
    let mut expected = vec![index.digest().clone()];
    expected.extend(digests(&built[1].all()));
    assert_eq!(*log.lock().unwrap(), expected);
}

#[tokio::test]
async fn walk_and_dispatch_descend_into_an_index_nested_in_an_index() {
    let fx = Fixture::new();
    let (inner, built) = multi_platform(&fx).await;
    let extra = fx.image("linux/s390x").await;
    let outer = fx
        .index(&[
            (inner.clone(), None),
            (extra.manifest.clone(), Some("linux/s390x")),
        ])
        .await;
    let mut expected = vec![outer.digest().clone(), inner.digest().clone()];
    for b in &built {
        expected.extend(digests(&b.all()));
    }
    expected.extend(digests(&extra.all()));

    let (h, log) = recording(&fx);
    walk(&h, std::slice::from_ref(&outer)).await.unwrap();
    assert_eq!(*log.lock().unwrap(), expected);

    let (h, log) = recording(&fx);
    dispatch(&h, &[outer], 2).await.unwrap();
    let got = counts(&log);
    assert_eq!(got.len(), expected.len());
    assert!(got.values().all(|&n| n == 1));
}

#[tokio::test]
async fn a_layer_repeated_in_a_manifest_and_shared_between_manifests_is_handled_once() {
    let fx = Fixture::new();
    let a = fx
        .image_with("linux/amd64", &["base", "top", "base"], true)
        .await;
    let b = fx.image_with("linux/arm64", &["base", "other"], true).await;
    let index = fx
        .index(&[
            (a.manifest.clone(), Some("linux/amd64")),
            (b.manifest.clone(), Some("linux/arm64/v8")),
        ])
        .await;
    let base = a.layers[0].digest().clone();

    let (h, log) = recording(&fx);
    walk(&h, std::slice::from_ref(&index)).await.unwrap();
    assert_eq!(counts(&log)[&base], 1);
    assert!(counts(&log).values().all(|&n| n == 1));

    let (h, log) = recording(&fx);
    dispatch(&h, &[index], 8).await.unwrap();
    assert_eq!(counts(&log)[&base], 1);
    assert_eq!(counts(&log).len(), 1 + 2 + 2 + 2 + 1);
}

/// Handles layers slowly while counting how many are in flight at once.
struct InFlight {
    inner: Handlers,
    now: AtomicUsize,
    max: AtomicUsize,
    handled: AtomicUsize,
}

#[async_trait::async_trait]
impl Handler for InFlight {
    async fn handle(&self, desc: &Descriptor) -> dist_images::Result<Vec<Descriptor>> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let out = self.inner.handle(desc).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.handled.fetch_add(1, Ordering::SeqCst);
        out
    }
}

#[tokio::test]
async fn dispatch_runs_up_to_the_limit_at_once_and_never_more() {
    let fx = Fixture::new();
    let seeds: Vec<String> = (0..16).map(|i| format!("layer {i}")).collect();
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let img = fx.image_with("linux/amd64", &seeds, true).await;
    for limit in [1, 3, 8] {
        let h = InFlight {
            inner: Handlers::new().push(children(fx.store.clone())),
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
            handled: AtomicUsize::new(0),
        };
        dispatch(&h, std::slice::from_ref(&img.manifest), limit)
            .await
            .unwrap();
        assert_eq!(h.handled.load(Ordering::SeqCst), 18);
        assert_eq!(h.max.load(Ordering::SeqCst), limit, "limit {limit}");
    }
}

#[tokio::test]
async fn dispatch_returns_the_first_error_and_cancels_the_handlers_in_flight() {
    let fx = Fixture::new();
    let img = fx
        .image_with("linux/amd64", &["slow 1", "bad", "slow 2", "slow 3"], true)
        .await;
    let bad = img.layers[1].digest().clone();
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let layer_handler = HandlerFunc::new(move |d: Descriptor| {
        let (bad, f) = (bad.clone(), f.clone());
        async move {
            if *d.digest() == bad {
                return Err(Error::NotFound("the bad layer".into()));
            }
            if dist_images::media_types::is_layer(d.media_type()) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                f.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Vec::new())
        }
    });
    let h = Handlers::new()
        .push(layer_handler)
        .push(children(fx.store.clone()));
    let result = tokio::time::timeout(Duration::from_secs(60), dispatch(&h, &[img.manifest], 4))
        .await
        .expect("dispatch must return once a handler fails");
    let err = result.unwrap_err();
    assert!(err.to_string().contains("the bad layer"), "{err}");
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn limit_manifests_fails_when_no_manifest_suits_the_platform() {
    let fx = Fixture::new();
    let (index, _) = multi_platform(&fx).await;
    let (h, _) = recording(&fx);
    let s390x = PlatformMatcher::new(&plat("linux/s390x"));
    let h = limit_manifests(filter_platforms(h, s390x.clone()), s390x, 1);
    let err = walk(&h, std::slice::from_ref(&index)).await.unwrap_err();
    assert_eq!(err.kind(), dist_images::ErrorKind::NotFound);
    assert!(err.to_string().contains("platform"), "{err}");
}

#[tokio::test]
async fn docker_schema2_manifest_lists_and_manifests_are_walked_like_oci_ones() {
    use dist_images::media_types::{
        DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    };
    use oci_spec::image::MediaType;
    let fx = Fixture::new();
    let layer = fx
        .put(MediaType::from(DOCKER_LAYER_GZIP), b"docker layer")
        .await;
    let config_json = Fixture::config_json("linux/arm64/v8", &[layer.digest().clone()]);
    let config = fx
        .put_json(MediaType::from(DOCKER_CONFIG), &config_json)
        .await;
    let manifest_json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config,
        "layers": [layer],
    });
    let mut manifest = fx
        .put_json(MediaType::from(DOCKER_MANIFEST), &manifest_json)
        .await;
    manifest.set_platform(Some(plat("linux/arm64/v8")));
    let list_json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [manifest],
    });
    let list = fx
        .put_json(MediaType::from(DOCKER_MANIFEST_LIST), &list_json)
        .await;

    let (h, log) = recording(&fx);
    walk(&h, std::slice::from_ref(&list)).await.unwrap();
    let expected = digests(&[
        list.clone(),
        manifest.clone(),
        config.clone(),
        layer.clone(),
    ]);
    assert_eq!(*log.lock().unwrap(), expected);

    let image = dist_images::Image::new("docker", list);
    let arm64 = PlatformMatcher::new(&plat("linux/arm64"));
    let chosen = image.manifest(&*fx.store, &arm64).await.unwrap();
    assert_eq!(chosen.descriptor.digest(), manifest.digest());
    let rootfs = image.rootfs(&*fx.store, &arm64).await.unwrap();
    assert_eq!(rootfs, vec![layer.digest().clone()]);
}
