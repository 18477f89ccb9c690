//! Malformed input: each case ends in a clear error, never a hang or a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Fixture, describe};
use dist_content::{Provider, ReaderAt};
use dist_images::platforms::AnyPlatform;
use dist_images::{
    Error, ErrorKind, HandlerFunc, Image, MAX_MANIFEST_SIZE, children, children_of, dispatch,
    media_types, walk,
};
use oci_spec::image::{Descriptor, Digest, MediaType};
use serde_json::json;

/// Runs `f` with a generous guard so that a hang fails the test instead of stalling CI.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("must not hang")
}

/// Walks and dispatches `desc` with the children handler and expects the same error kind
/// from both, whose message contains `needle`.
async fn expect_walk_error(fx: &Fixture, desc: &Descriptor, kind: ErrorKind, needle: &str) {
    let h = children(fx.store.clone());
    for result in [
        bounded(walk(&h, std::slice::from_ref(desc))).await,
        bounded(dispatch(&h, std::slice::from_ref(desc), 4)).await,
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(needle), "{err:?} lacks {needle:?}");
        assert!(
            err.to_string().contains(&desc.digest().to_string()),
            "{err}"
        );
    }
}

#[tokio::test]
async fn truncated_manifest_json_is_a_parse_error() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let full = serde_json::to_vec(&Fixture::manifest_json(&img.config, &img.layers)).unwrap();
    let truncated = fx
        .put(MediaType::ImageManifest, &full[..full.len() / 2])
        .await;
    expect_walk_error(
        &fx,
        &truncated,
        ErrorKind::InvalidArgument,
        "parsing manifest",
    )
    .await;
}

#[tokio::test]
async fn a_parse_error_keeps_serdes_error_as_the_source() {
    let fx = Fixture::new();
    let desc = fx
        .put(MediaType::ImageManifest, b"{\"schemaVersion\": ")
        .await;
    let err = bounded(walk(
        &children(fx.store.clone()),
        std::slice::from_ref(&desc),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.downcast_ref::<serde_json::Error>().unwrap().is_eof());
}

#[tokio::test]
async fn a_missing_blob_is_the_content_error_reachable_through_source() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let mut missing = img.manifest.clone();
    missing.set_digest(Digest::from_str(&format!("sha256:{}", "0".repeat(64))).unwrap());
    let err = bounded(walk(&children(fx.store.clone()), &[missing]))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let source = std::error::Error::source(&err).expect("a source");
    let content = source.downcast_ref::<dist_content::Error>().unwrap();
    assert_eq!(content.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn truncated_index_json_is_a_parse_error() {
    let fx = Fixture::new();
    let desc = fx
        .put(
            MediaType::ImageIndex,
            br#"{"schemaVersion":2,"manifests":[{"mediaT"#,
        )
        .await;
    expect_walk_error(&fx, &desc, ErrorKind::InvalidArgument, "parsing index").await;
}

#[tokio::test]
async fn wrong_schema_version_is_refused() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let mut m = Fixture::manifest_json(&img.config, &img.layers);
    m["schemaVersion"] = json!(1);
    let desc = fx.put_json(MediaType::ImageManifest, &m).await;
    expect_walk_error(&fx, &desc, ErrorKind::InvalidArgument, "schemaVersion 1").await;

    let index = json!({"schemaVersion": 3, "manifests": [img.manifest]});
    let desc = fx.put_json(MediaType::ImageIndex, &index).await;
    expect_walk_error(&fx, &desc, ErrorKind::InvalidArgument, "schemaVersion 3").await;
}

#[tokio::test]
async fn a_descriptor_with_an_invalid_digest_is_refused() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let mut m = Fixture::manifest_json(&img.config, &img.layers);
    m["layers"][1]["digest"] = json!("sha256:not-hex");
    let desc = fx.put_json(MediaType::ImageManifest, &m).await;
    expect_walk_error(&fx, &desc, ErrorKind::InvalidArgument, "parsing manifest").await;

    m["layers"][1]["digest"] = json!("sha256:../../etc/passwd");
    let desc = fx.put_json(MediaType::ImageManifest, &m).await;
    expect_walk_error(&fx, &desc, ErrorKind::InvalidArgument, "parsing manifest").await;
}

#[tokio::test]
async fn a_body_of_the_wrong_kind_is_refused() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let index = fx
        .index(&[(img.manifest.clone(), Some("linux/amd64"))])
        .await;
    // The index's bytes, described as a manifest.
    let mut as_manifest = index.clone();
    as_manifest.set_media_type(MediaType::ImageManifest);
    expect_walk_error(&fx, &as_manifest, ErrorKind::InvalidArgument, "manifest").await;
}

#[tokio::test]
async fn an_oversized_manifest_is_refused_before_reading() {
    let fx = Fixture::new();
    let digest = describe(MediaType::ImageManifest, b"never stored")
        .digest()
        .clone();
    let huge = Descriptor::new(MediaType::ImageManifest, MAX_MANIFEST_SIZE + 1, digest);
    let err = children_of(&*fx.store, &huge).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
}

#[tokio::test]
async fn schema1_is_refused_and_unknown_media_types_have_no_children() {
    let fx = Fixture::new();
    let desc = fx
        .put(
            MediaType::from(media_types::DOCKER_SCHEMA1_MANIFEST_SIGNED),
            b"{}",
        )
        .await;
    let err = children_of(&*fx.store, &desc).await.unwrap_err();
    assert!(err.to_string().contains("schema1"), "{err}");

    let sig = fx
        .put(
            MediaType::from("application/vnd.dev.cosign.simplesigning.v1+json"),
            b"{}",
        )
        .await;
    assert!(children_of(&*fx.store, &sig).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_blob_is_not_found() {
    let fx = Fixture::new();
    let absent = describe(MediaType::ImageManifest, b"absent");
    expect_walk_error(&fx, &absent, ErrorKind::NotFound, "not found").await;
}

/// A provider that serves whatever bytes it was given under any digest, as a corrupt or
/// hostile store would.
struct Lying(HashMap<Digest, Vec<u8>>);

struct Bytes(Vec<u8>);

#[async_trait]
impl ReaderAt for Bytes {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    async fn read_at(&self, buf: &mut [u8], offset: u64) -> dist_content::Result<usize> {
        let rest = self.0.get(offset as usize..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        Ok(n)
    }
}

#[async_trait]
impl Provider for Lying {
    async fn reader_at(&self, desc: &Descriptor) -> dist_content::Result<Box<dyn ReaderAt>> {
        match self.0.get(desc.digest()) {
            Some(b) => Ok(Box::new(Bytes(b.clone()))),
            None => Err(dist_content::Error::NotFound(desc.digest().to_string())),
        }
    }
}

/// An index stored under a digest that it lists as its own child.
fn self_referencing_index() -> (Descriptor, Lying) {
    let digest = Digest::from_str(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    // Find the size at which the body's own size field is consistent.
    let mut size = 0u64;
    loop {
        let me = Descriptor::new(MediaType::ImageIndex, size, digest.clone());
        let body = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [me]})).unwrap();
        if body.len() as u64 == size {
            let store = Lying(HashMap::from([(digest, body)]));
            return (me, store);
        }
        size = body.len() as u64;
    }
}

#[tokio::test]
async fn a_self_referencing_index_in_a_corrupt_store_is_an_error_not_a_loop() {
    let (me, store) = self_referencing_index();
    let h = children(Arc::new(store));
    for result in [
        bounded(walk(&h, std::slice::from_ref(&me))).await,
        bounded(dispatch(&h, std::slice::from_ref(&me), 4)).await,
    ] {
        let err = result.unwrap_err();
        // The bytes cannot hash to the digest they claim: refused on read.
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
        assert!(err.to_string().contains(&me.digest().to_string()), "{err}");
    }
    let (me, store) = self_referencing_index();
    let err = bounded(Image::new("loop", me).manifest(&store, &AnyPlatform))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn a_handler_that_lists_an_index_as_its_own_child_is_stopped_as_a_cycle() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let index = fx
        .index(&[(img.manifest.clone(), Some("linux/amd64"))])
        .await;
    // Children of the index, plus the index itself again.
    let store = fx.store.clone();
    let looping = HandlerFunc::new(move |d: Descriptor| {
        let store = store.clone();
        async move {
            let mut kids = children_of(&*store, &d).await?;
            if media_types::is_index(d.media_type()) {
                kids.push(d);
            }
            Ok(kids)
        }
    });
    for result in [
        bounded(walk(&looping, std::slice::from_ref(&index))).await,
        bounded(dispatch(&looping, std::slice::from_ref(&index), 4)).await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("cycle"), "{err}");
        assert!(
            err.to_string().contains(&index.digest().to_string()),
            "{err}"
        );
    }
}

#[tokio::test]
async fn indexes_nested_too_deep_are_refused() {
    let fx = Fixture::new();
    let img = fx.image("linux/amd64").await;
    let mut top = img.manifest.clone();
    for _ in 0..dist_images::MAX_DEPTH {
        top = fx.index(&[(top, None)]).await;
    }
    let h = children(fx.store.clone());
    for result in [
        bounded(walk(&h, std::slice::from_ref(&top))).await,
        bounded(dispatch(&h, std::slice::from_ref(&top), 4)).await,
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains("deeper"), "{err}");
    }
    let err = bounded(Image::new("deep", top).manifest(&*fx.store, &AnyPlatform))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deeper"), "{err}");
}
