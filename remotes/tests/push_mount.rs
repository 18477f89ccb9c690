//! Cross-repository mounts: a blob whose descriptor names a source repository on the same
//! registry (`containerd.io/distribution.source.<host>=<repo>`) is mounted, not uploaded;
//! a source that cannot serve it falls back to an upload, in the session the registry
//! opened. Against `docker-registry` 2.8.2 (three auth modes) and `ferro-oci-server`, which
//! does not mount, behind a `CountingProxy`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod push_support;

use std::collections::HashMap;

use dist_remotes::{DISTRIBUTION_SOURCE_PREFIX, DockerResolver, PushOutcome, Pusher, Resolver};
use dist_test_support::{AuthMode, CountingProxy, FerroRegistry, Registry};
use oci_spec::image::Descriptor;
use push_support::{Image, image, options_via, plain};

/// `d` annotated with `sources` as its mount candidates on `host`.
fn from(d: &Descriptor, host: &str, sources: &str) -> Descriptor {
    let mut d = d.clone();
    d.set_annotations(Some(HashMap::from([(
        format!("{DISTRIBUTION_SOURCE_PREFIX}{host}"),
        sources.to_string(),
    )])));
    d
}

/// Pushes `img`'s blobs annotated with `sources` on `host`, then its manifest; returns the
/// layer's and the config's outcomes.
async fn push_annotated(
    pusher: &dyn Pusher,
    img: &Image,
    host: &str,
    sources: &str,
) -> (PushOutcome, PushOutcome) {
    let layer = pusher
        .push(&from(&img.layer, host, sources), &img.store)
        .await
        .unwrap();
    let config = pusher
        .push(&from(&img.config, host, sources), &img.store)
        .await
        .unwrap();
    pusher.push(&img.manifest, &img.store).await.unwrap();
    (layer, config)
}

/// The queries of the `POST`s the registry answered (not those a `401` sent back for a
/// token).
fn mount_posts(p: &CountingProxy) -> Vec<String> {
    p.requests()
        .into_iter()
        .filter(|s| s.method == "POST" && s.status != Some(401))
        .map(|s| s.query)
        .collect()
}

async fn mounted_in(mode: AuthMode) {
    let reg = Registry::start(mode).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let r = DockerResolver::new(options_via(&reg, &host));
    let img = image(300 * 1024, 11).await;
    let a = r.pusher(&format!("{host}/team/a:v1")).await.unwrap();
    assert_eq!(img.push(a.as_ref()).await.unwrap(), PushOutcome::Pushed);
    let (put_before, patch_before) = (proxy.body_bytes("PUT"), proxy.body_bytes("PATCH"));
    let posts_before = mount_posts(&proxy).len();

    let reference = format!("{host}/team/b:v1");
    let b = r.pusher(&reference).await.unwrap();
    let outcomes = push_annotated(b.as_ref(), &img, &host, "team/b, team/a").await;
    assert_eq!(outcomes, (PushOutcome::Mounted, PushOutcome::Mounted));
    img.assert_served(&r, &reference).await;

    assert_eq!(proxy.body_bytes("PATCH"), patch_before);
    assert_eq!(
        proxy.body_bytes("PUT") - put_before,
        img.manifest.size(),
        "no blob byte was uploaded, only the manifest"
    );
    let posts = mount_posts(&proxy);
    let new: Vec<_> = posts[posts_before..].iter().collect();
    assert_eq!(
        new.len(),
        2,
        "one mount per blob, the own repository skipped"
    );
    assert!(new.iter().all(|q| q.contains("from=team%2Fa")), "{new:?}");

    if let Some(t) = reg.token_issuer() {
        let asked = t.requests().iter().any(|q| {
            let scopes: Vec<String> = q
                .query()
                .into_iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v)
                .collect();
            scopes.contains(&"repository:team/b:pull,push".to_string())
                && scopes.contains(&"repository:team/a:pull".to_string())
        });
        assert!(
            asked,
            "the token request asks pull on the source repository"
        );
    }
}

#[tokio::test]
async fn a_blob_in_another_repository_is_mounted_without_uploading() {
    mounted_in(AuthMode::None).await;
}

#[tokio::test]
async fn a_blob_in_another_repository_is_mounted_with_htpasswd() {
    mounted_in(AuthMode::Htpasswd).await;
}

#[tokio::test]
async fn a_blob_in_another_repository_is_mounted_with_pull_scope_on_it_from_a_token_server() {
    mounted_in(AuthMode::Token).await;
}

#[tokio::test]
async fn a_source_without_the_blob_falls_back_to_the_upload_the_registry_opened() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let r = DockerResolver::new(plain(&host));
    let img = image(300 * 1024, 12).await;
    let reference = format!("{host}/team/c:v1");
    let c = r.pusher(&reference).await.unwrap();
    let outcomes = push_annotated(c.as_ref(), &img, &host, "no/such-repo").await;
    assert_eq!(outcomes, (PushOutcome::Pushed, PushOutcome::Pushed));
    img.assert_served(&r, &reference).await;
    let posts = mount_posts(&proxy);
    assert_eq!(
        posts.len(),
        2,
        "the mount's 202 session was used: {posts:?}"
    );
    assert!(posts.iter().all(|q| q.contains("mount=")));
    let blobs = img.layer.size() + img.config.size();
    assert_eq!(proxy.body_bytes("PUT"), blobs + img.manifest.size());
}

#[tokio::test]
async fn a_source_on_another_registry_is_not_tried() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let r = DockerResolver::new(plain(&host));
    let img = image(1024, 13).await;
    let a = r.pusher(&format!("{host}/team/a:v1")).await.unwrap();
    img.push(a.as_ref()).await.unwrap();
    let before = mount_posts(&proxy).len();
    let b = r.pusher(&format!("{host}/team/b:v1")).await.unwrap();
    let outcomes = push_annotated(b.as_ref(), &img, "other.example:5000", "team/a").await;
    assert_eq!(outcomes, (PushOutcome::Pushed, PushOutcome::Pushed));
    let posts = mount_posts(&proxy);
    assert!(
        posts[before..].iter().all(|q| q.is_empty()),
        "plain uploads, no mount: {posts:?}"
    );
}

#[tokio::test]
async fn a_registry_that_does_not_mount_gets_the_blob_in_the_session_it_opened() {
    // ferro-oci-server ignores `mount` and answers 202 with an upload session. (It keeps
    // blobs registry-wide, so a blob pushed to any repository is already present in all.)
    let reg = FerroRegistry::start().unwrap();
    let proxy = CountingProxy::start(&reg.host()).unwrap();
    let host = proxy.host();
    let r = DockerResolver::new(plain(&host).with_chunked_upload(128 * 1024));
    let img = image(300 * 1024, 14).await;
    let reference = format!("{host}/team/b:v1");
    let b = r.pusher(&reference).await.unwrap();
    let outcomes = push_annotated(b.as_ref(), &img, &host, "team/a").await;
    assert_eq!(outcomes, (PushOutcome::Pushed, PushOutcome::Pushed));
    img.assert_served(&r, &reference).await;
    let posts = mount_posts(&proxy);
    assert_eq!(posts.len(), 2, "one POST per blob, the mount's: {posts:?}");
    assert!(posts.iter().all(|q| q.contains("mount=")));
    let blobs = img.layer.size() + img.config.size();
    assert_eq!(proxy.body_bytes("PATCH"), blobs, "sent once, in chunks");
}
