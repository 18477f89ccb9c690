//! Push answers a real registry does not give, from a scripted `HostileRegistry`: chunked
//! uploads that never progress or claim more than was sent, mounts refused after auth or
//! answered with another digest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use base64::Engine;
use dist_content::LocalStore;
use dist_remotes::{DISTRIBUTION_SOURCE_PREFIX, DockerResolver, ErrorKind, PushOutcome, Resolver};
use dist_test_support::{AuthMode, HostileRegistry, PASSWORD, Response, USERNAME};
use oci_spec::image::{Descriptor, MediaType};

async fn store_with(bytes: &[u8]) -> (tempfile::TempDir, LocalStore, Descriptor) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    let d = common::desc(bytes, MediaType::ImageLayerGzip);
    dist_content::write_blob(&store, "t", &d, bytes)
        .await
        .unwrap();
    (dir, store, d)
}

/// A registry whose upload session `u1` answers every `PATCH` with `range`.
fn chunk_server(range: &'static str) -> HostileRegistry {
    let reg = HostileRegistry::start().unwrap();
    reg.route(
        "/v2/repo/blobs/uploads/",
        Response::status(202).header("Location", "/v2/repo/blobs/uploads/u1"),
    );
    reg.route_fn("/v2/repo/blobs/uploads/u1", move |q| {
        match q.method.as_str() {
            "PATCH" => Response::status(202)
                .header("Location", "/v2/repo/blobs/uploads/u1")
                .header("Range", range),
            _ => Response::status(204).header("Range", range),
        }
    });
    reg
}

#[tokio::test]
async fn chunks_accepted_without_progress_fail_after_the_retry_budget() {
    let reg = chunk_server("0-0");
    let (_dir, store, d) = store_with(&common::data(10 * 1024)).await;
    let opts = common::fault_options(&reg.host()).with_chunked_upload(4096);
    let pusher = DockerResolver::new(opts)
        .pusher(&format!("{}/repo:t", reg.host()))
        .await
        .unwrap();
    let err = pusher.push(&d, &store).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    let patches = reg
        .requests()
        .iter()
        .filter(|q| q.method == "PATCH")
        .count();
    assert_eq!(patches, 4, "the policy's four attempts, then the error");
}

#[tokio::test]
async fn an_upload_range_past_the_blob_is_a_protocol_error() {
    let reg = chunk_server("0-99999999");
    let (_dir, store, d) = store_with(&common::data(10 * 1024)).await;
    let opts = common::fault_options(&reg.host()).with_chunked_upload(4096);
    let pusher = DockerResolver::new(opts)
        .pusher(&format!("{}/repo:t", reg.host()))
        .await
        .unwrap();
    let err = pusher.push(&d, &store).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("100000000 of 10240"), "{err}");
}

fn annotated(d: &Descriptor, host: &str, from: &str) -> Descriptor {
    let mut d = d.clone();
    d.set_annotations(Some(HashMap::from([(
        format!("{DISTRIBUTION_SOURCE_PREFIX}{host}"),
        from.to_string(),
    )])));
    d
}

#[tokio::test]
async fn a_mount_refused_after_authenticating_falls_back_to_an_upload() {
    let reg = HostileRegistry::start().unwrap();
    let blob = common::data(4096);
    let (_dir, store, d) = store_with(&blob).await;
    // Credentials without pull on the source: the mount is refused even when sent.
    reg.route_fn("/v2/repo/blobs/uploads/", |q| {
        if q.query().iter().any(|(k, _)| k == "mount") {
            Response::status(401).header("WWW-Authenticate", r#"Basic realm="test""#)
        } else {
            Response::status(202).header("Location", "/v2/repo/blobs/uploads/u1")
        }
    });
    reg.route(
        "/v2/repo/blobs/uploads/u1",
        Response::status(201).header("Docker-Content-Digest", d.digest().to_string()),
    );
    let opts = common::options(&reg.host(), AuthMode::Htpasswd, PASSWORD);
    let pusher = DockerResolver::new(opts)
        .pusher(&format!("{}/repo:t", reg.host()))
        .await
        .unwrap();
    let outcome = pusher
        .push(&annotated(&d, &reg.host(), "other/repo"), &store)
        .await;
    assert_eq!(outcome.unwrap(), PushOutcome::Pushed);
    let log = reg.requests();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    let mounts: Vec<_> = log
        .iter()
        .filter(|q| q.method == "POST" && q.target.contains("mount="))
        .collect();
    assert_eq!(mounts.len(), 2, "tried without, then with credentials");
    assert_eq!(
        mounts[1].header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let puts = log.iter().filter(|q| q.method == "PUT").count();
    assert_eq!(puts, 1, "uploaded instead");
}

#[tokio::test]
async fn a_mount_answered_with_another_digest_is_a_mismatch() {
    let reg = HostileRegistry::start().unwrap();
    let (_dir, store, d) = store_with(b"mounted bytes").await;
    let other = dist_content::sha256_of(b"other bytes");
    reg.route(
        "/v2/repo/blobs/uploads/",
        Response::status(201).header("Docker-Content-Digest", other.to_string()),
    );
    let pusher = DockerResolver::new(common::fault_options(&reg.host()))
        .pusher(&format!("{}/repo:t", reg.host()))
        .await
        .unwrap();
    let err = pusher
        .push(&annotated(&d, &reg.host(), "src/repo"), &store)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}
