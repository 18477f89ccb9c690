//! Artifacts (signatures, SBOMs) listed in an index without a platform: a pull skips them,
//! whether or not their content is there, and finds the image.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Fixture, describe, plat};
use dist_images::{
    Handler, HandlerFunc, Handlers, Image, PlatformMatcher, children, filter_platforms,
    limit_manifests, walk,
};
use oci_spec::image::{Descriptor, Digest, MediaType};
use serde_json::json;

/// An artifact manifest entry (an SBOM) that names its type and has no platform; its
/// content is not in the store (an index may list what a registry or archive lacks).
fn absent_artifact() -> Descriptor {
    let bytes = br#"{"schemaVersion":2,"artifactType":"application/spdx+json"}"#;
    let mut d = describe(MediaType::ImageManifest, bytes);
    d.set_artifact_type(Some(MediaType::Other("application/spdx+json".into())));
    d
}

#[tokio::test]
async fn a_pull_skips_an_artifact_an_index_lists_without_a_platform() {
    let fx = Fixture::new();
    let amd64 = fx.image("linux/amd64").await;
    // The artifact comes first and has no platform, like the platform-less image would.
    let index = fx
        .index(&[
            (absent_artifact(), None),
            (amd64.manifest.clone(), Some("linux/amd64")),
        ])
        .await;

    let log: Arc<Mutex<Vec<Digest>>> = Arc::default();
    let l = log.clone();
    let record = HandlerFunc::new(move |d: Descriptor| {
        let l = l.clone();
        async move {
            l.lock().unwrap().push(d.digest().clone());
            Ok(Vec::new())
        }
    });
    let m = PlatformMatcher::new(&plat("linux/amd64"));
    let h = Handlers::new()
        .push(record)
        .push(children(fx.store.clone()));
    let h = limit_manifests(filter_platforms(h, m.clone()), m.clone(), 0);
    walk(&h, std::slice::from_ref(&index)).await.unwrap();
    let visited = log.lock().unwrap().clone();
    assert!(!visited.contains(absent_artifact().digest()), "{visited:?}");
    assert!(visited.contains(amd64.manifest.digest()));

    let image = Image::new("r/app:1", index);
    let chosen = image.manifest(&*fx.store, &m).await.unwrap();
    assert_eq!(chosen.descriptor.digest(), amd64.manifest.digest());
}

#[tokio::test]
async fn a_platform_less_image_is_chosen_over_a_platform_less_artifact_before_it() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    // A stored artifact without an artifactType on its entry: its config is not an image
    // config, so it is passed over when the image is read.
    let cfg = fx
        .put(
            MediaType::Other("application/vnd.dev.cosign.simplesigning.v1+json".into()),
            b"{}",
        )
        .await;
    let sig = fx
        .put_json(
            MediaType::ImageManifest,
            &json!({
                "schemaVersion": 2,
                "mediaType": dist_images::media_types::OCI_MANIFEST,
                "config": cfg,
                "layers": [],
            }),
        )
        .await;
    let index = fx
        .index(&[
            (absent_artifact(), None),
            (sig, None),
            (img.manifest.clone(), None),
        ])
        .await;
    let m = PlatformMatcher::new(&plat("linux/amd64"));
    let kept = filter_platforms(children(fx.store.clone()), m.clone())
        .handle(&index)
        .await
        .unwrap();
    assert_eq!(kept.len(), 2, "the typed artifact is dropped: {kept:?}");

    let image = Image::new("r/app:1", index);
    let layers = image.layers(&*fx.store, &m).await.unwrap();
    assert_eq!(layers.len(), img.layers.len());
}
