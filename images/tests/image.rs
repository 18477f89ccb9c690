//! Image: choosing a manifest for a platform, config, rootfs, size and check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Fixture, describe, multi_platform, plat};
use dist_images::platforms::{AnyPlatform, parse};
use dist_images::{ErrorKind, Image, PlatformMatcher};
use oci_spec::image::MediaType;

fn matcher(p: &str) -> PlatformMatcher {
    PlatformMatcher::new(&parse(p).unwrap())
}

#[tokio::test]
async fn manifest_picks_the_index_entry_for_each_platform() {
    let fx = Fixture::new();
    let (index, built) = multi_platform(&fx).await;
    let image = Image::new("example.com/multi:1", index);
    let cases = [
        ("linux/amd64", 0),
        ("linux/x86_64", 0),
        ("linux/arm64", 1),
        ("linux/arm64/v8", 1),
        ("linux/arm/v7", 2),
        ("windows/amd64", 3),
    ];
    for (p, want) in cases {
        let m = image.manifest(&*fx.store, &matcher(p)).await.unwrap();
        assert_eq!(m.descriptor.digest(), built[want].manifest.digest(), "{p}");
        assert_eq!(m.manifest.layers().len(), 2);
    }
}

#[tokio::test]
async fn manifest_falls_back_to_a_compatible_lower_variant() {
    let fx = Fixture::new();
    let v6 = fx.image("linux/arm/v6").await;
    let amd64 = fx.image("linux/amd64").await;
    let index = fx
        .index(&[
            (amd64.manifest.clone(), Some("linux/amd64")),
            (v6.manifest.clone(), Some("linux/arm/v6")),
        ])
        .await;
    let image = Image::new("fallback", index);
    let m = image
        .manifest(&*fx.store, &matcher("linux/arm/v7"))
        .await
        .unwrap();
    assert_eq!(m.descriptor.digest(), v6.manifest.digest());
    let err = image
        .manifest(&*fx.store, &matcher("linux/arm/v5"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("fallback"), "{err}");
}

#[tokio::test]
async fn a_single_manifest_is_chosen_by_its_config_platform() {
    let fx = Fixture::new();
    let img = fx.image("linux/arm64/v8").await;
    let image = Image::new("single", img.manifest.clone());
    let m = image
        .manifest(&*fx.store, &matcher("linux/arm64"))
        .await
        .unwrap();
    assert_eq!(m.descriptor, img.manifest);
    let err = image
        .manifest(&*fx.store, &matcher("linux/amd64"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn config_rootfs_and_size_describe_the_platform_image() {
    let fx = Fixture::new();
    let (index, built) = multi_platform(&fx).await;
    let image = Image::new("multi", index);
    let arm = matcher("linux/arm/v7");
    assert_eq!(
        image.config(&*fx.store, &arm).await.unwrap(),
        built[2].config
    );
    assert_eq!(
        image.rootfs(&*fx.store, &arm).await.unwrap(),
        built[2].diff_ids
    );
    let want = built[2].manifest.size()
        + built[2].config.size()
        + built[2].layers.iter().map(|l| l.size()).sum::<u64>();
    assert_eq!(image.size(&*fx.store, &arm).await.unwrap(), want);
}

#[tokio::test]
async fn size_counts_a_repeated_layer_once() {
    let fx = Fixture::new();
    let img = fx
        .image_with("linux/amd64", &["base", "top", "base"], true)
        .await;
    let image = Image::new("repeat", img.manifest.clone());
    let want =
        img.manifest.size() + img.config.size() + img.layers[0].size() + img.layers[1].size();
    assert_eq!(image.size(&*fx.store, &AnyPlatform).await.unwrap(), want);
}

#[tokio::test]
async fn check_reports_exactly_the_missing_blobs_of_a_partial_image() {
    let fx = Fixture::new();
    let img = fx
        .image_with("linux/amd64", &["one", "two", "three"], false)
        .await;
    // Store only the middle layer.
    fx.layer("two").await;
    let index = fx
        .index(&[(img.manifest.clone(), Some("linux/amd64"))])
        .await;
    let image = Image::new("partial", index);
    let check = image
        .check(&*fx.store, &matcher("linux/amd64"))
        .await
        .unwrap();
    assert!(!check.available);
    let mut required = vec![img.config.clone()];
    required.extend(img.layers.iter().cloned());
    assert_eq!(check.required, required);
    assert_eq!(
        check.present,
        vec![img.config.clone(), img.layers[1].clone()]
    );
    assert_eq!(
        check.missing,
        vec![img.layers[0].clone(), img.layers[2].clone()]
    );

    fx.layer("one").await;
    fx.layer("three").await;
    let check = image
        .check(&*fx.store, &matcher("linux/amd64"))
        .await
        .unwrap();
    assert!(check.available);
    assert!(check.missing.is_empty());
    assert_eq!(check.present, required);
}

#[tokio::test]
async fn check_reports_a_missing_manifest_or_index_as_the_only_missing_blob() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let absent_manifest = describe(MediaType::ImageManifest, b"{\"not\": \"stored\"}");
    let index = fx
        .index(&[
            (absent_manifest.clone(), Some("linux/amd64")),
            (img.manifest.clone(), Some("linux/arm64")),
        ])
        .await;
    let check = Image::new("no-manifest", index)
        .check(&*fx.store, &matcher("linux/amd64"))
        .await
        .unwrap();
    let mut want = absent_manifest.clone();
    want.set_platform(Some(plat("linux/amd64")));
    assert!(!check.available);
    assert_eq!(check.missing, vec![want]);

    let absent_index = describe(MediaType::ImageIndex, b"{}");
    let check = Image::new("no-index", absent_index.clone())
        .check(&*fx.store, &AnyPlatform)
        .await
        .unwrap();
    assert_eq!(check.missing, vec![absent_index.clone()]);
    assert_eq!(check.required, vec![absent_index]);
}

#[tokio::test]
async fn artifact_manifests_without_a_platform_are_passed_over() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let empty = fx.put(MediaType::EmptyJSON, b"{}").await;
    let blob = fx
        .put(MediaType::from("application/spdx+json"), b"{\"sbom\":1}")
        .await;
    let artifact = fx
        .put_json(
            MediaType::ImageManifest,
            &Fixture::manifest_json(&empty, &[blob]),
        )
        .await;
    let index = fx
        .index(&[(artifact, None), (img.manifest.clone(), None)])
        .await;
    let image = Image::new("with-sbom", index);
    let m = image.manifest(&*fx.store, &AnyPlatform).await.unwrap();
    assert_eq!(m.descriptor.digest(), img.manifest.digest());
}

#[tokio::test]
async fn layers_pair_each_manifest_layer_with_its_diff_id() {
    let fx = Fixture::new();
    let img = fx.image_with("linux/amd64", &["base", "top"], true).await;
    let image = Image::new("paired", img.manifest.clone());
    let layers = image.layers(&*fx.store, &AnyPlatform).await.unwrap();
    let blobs: Vec<_> = layers.iter().map(|l| l.blob.clone()).collect();
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(blobs, img.layers);
    assert_eq!(diff_ids, img.diff_ids);
}

#[tokio::test]
async fn layers_refuse_a_config_with_more_diff_ids_than_the_manifest_has_layers() {
    let fx = Fixture::new();
    let img = fx.image_with("linux/amd64", &["base"], true).await;
    let mut diff_ids = img.diff_ids.clone();
    diff_ids.push(img.diff_ids[0].clone());
    let config = fx
        .put_json(
            MediaType::ImageConfig,
            &Fixture::config_json("linux/amd64", &diff_ids),
        )
        .await;
    let manifest = fx
        .put_json(
            MediaType::ImageManifest,
            &Fixture::manifest_json(&config, &img.layers),
        )
        .await;
    let image = Image::new("extra", manifest);
    let err = image.layers(&*fx.store, &AnyPlatform).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn layers_refuse_a_manifest_with_more_layers_than_the_config_has_diff_ids() {
    let fx = Fixture::new();
    let img = fx.image_with("linux/amd64", &["base", "top"], true).await;
    let config = fx
        .put_json(
            MediaType::ImageConfig,
            &Fixture::config_json("linux/amd64", &img.diff_ids[..1]),
        )
        .await;
    let manifest = fx
        .put_json(
            MediaType::ImageManifest,
            &Fixture::manifest_json(&config, &img.layers),
        )
        .await;
    let image = Image::new("missing", manifest);
    let err = image.layers(&*fx.store, &AnyPlatform).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}
