//! One size limit for manifests and configs, configured once and honoured by every reader:
//! the children handler, `children_of_with`, `read_manifest`/`read_index` and `Image`'s
//! methods.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Fixture, multi_platform};
use dist_images::platforms::AnyPlatform;
use dist_images::{
    ErrorKind, Handler, Image, Limits, MAX_MANIFEST_SIZE, children, children_of, children_of_with,
    read_index, read_manifest,
};
use oci_spec::image::MediaType;
use serde_json::json;

#[tokio::test]
async fn the_children_handler_reads_within_the_limits_it_is_given() {
    let fx = Fixture::new();
    let built = fx.image("linux/amd64").await;
    let small = Limits::DEFAULT.with_max_manifest_size(built.manifest.size() - 1);

    let h = children(fx.store.clone());
    assert_eq!(h.handle(&built.manifest).await.unwrap().len(), 3);
    let err = children(fx.store.clone())
        .with_limits(small)
        .handle(&built.manifest)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("limit"), "{err}");

    let err = children_of_with(&*fx.store, &built.manifest, &small)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = read_manifest(&*fx.store, &built.manifest, &small)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[tokio::test]
async fn a_raised_limit_reads_a_manifest_larger_than_the_default() {
    let fx = Fixture::new();
    let built = fx.image("linux/amd64").await;
    let padding = "x".repeat(usize::try_from(MAX_MANIFEST_SIZE).unwrap());
    let mut big = Fixture::manifest_json(&built.config, &built.layers);
    big["annotations"] = json!({ "padding": padding });
    let big = fx.put_json(MediaType::ImageManifest, &big).await;
    assert!(big.size() > MAX_MANIFEST_SIZE);

    let err = children_of(&*fx.store, &big).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let raised = Limits::DEFAULT.with_max_manifest_size(8 << 20);
    let kids = children(fx.store.clone())
        .with_limits(raised)
        .handle(&big)
        .await
        .unwrap();
    assert_eq!(kids.len(), 3);
    let image = Image::new("example.com/big:1", big);
    assert!(image.manifest(&*fx.store, &AnyPlatform).await.is_err());
    let image = image.with_limits(raised);
    assert_eq!(
        image.layers(&*fx.store, &AnyPlatform).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn image_methods_honour_the_manifest_and_config_limits() {
    let fx = Fixture::new();
    let (index, built) = multi_platform(&fx).await;
    let image = Image::new("example.com/multi:1", index.clone());
    assert_eq!(*image.limits(), Limits::DEFAULT);
    image.layers(&*fx.store, &AnyPlatform).await.unwrap();

    // The index itself is over the limit.
    let tight = image
        .clone()
        .with_limits(Limits::DEFAULT.with_max_manifest_size(index.size() - 1));
    let err = tight.manifest(&*fx.store, &AnyPlatform).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let err = read_index(&*fx.store, &index, tight.limits())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(tight.check(&*fx.store, &AnyPlatform).await.is_err());

    // The config is over its limit: reading it fails, the manifest alone still reads.
    let config_size = built.iter().map(|b| b.config.size()).min().unwrap();
    let small_config = image
        .clone()
        .with_limits(Limits::DEFAULT.with_max_config_size(config_size - 1));
    small_config
        .manifest(&*fx.store, &AnyPlatform)
        .await
        .unwrap();
    let err = small_config
        .read_config(&*fx.store, &AnyPlatform)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    // Limits are how a value reads, not part of the record.
    assert_eq!(tight, image);
}
