//! `DockerPusher` against a real `docker-registry`: blobs and manifests pushed from a
//! `LocalStore`, read back byte for byte, and a re-push that uploads nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use base64::Engine;
use dist_content::{LocalStore, Manager};
use dist_images::Handler;
use dist_remotes::{DockerResolver, ErrorKind, Fetcher, PushOutcome, Resolver, fetch_handler};
use dist_test_support::{
    AuthMode, HostileRegistry, OciLayout, PASSWORD, Platform, Push, Registry, Response, USERNAME,
};
use oci_spec::image::{Descriptor, MediaType};

/// Pushes an image with skopeo to `a/img:v1`, pulls it into a fresh store, pushes it with
/// `DockerPusher` to `b/img:copy`, and checks what the registry then serves.
async fn push_from_the_store_in(mode: AuthMode) {
    let reg = Registry::start(mode).unwrap();
    let host = reg.host();
    let mut layout = OciLayout::new().unwrap();
    let img = layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("hello.txt", b"hello push\n"), ("etc/x", b"x")],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "a/img:v1", Push::oci())
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));

    // Pull repository A into a store with the fetch path.
    let r = common::resolver(&reg);
    let (name, root) = r.resolve(&format!("{host}/a/img:v1")).await.unwrap();
    let fetcher: Arc<dyn Fetcher> = Arc::from(r.fetcher(&name).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path().join("content")).unwrap());
    let h = fetch_handler(store.clone(), fetcher);
    for d in std::iter::once(&root).chain(&img.children) {
        h.handle(d).await.unwrap();
        assert_eq!(store.info(d.digest()).await.unwrap().size, d.size());
    }

    // Push children, then the manifest, to repository B by tag.
    let pusher = r.pusher(&format!("{host}/b/img:copy")).await.unwrap();
    for d in &img.children {
        let outcome = pusher.push(d, store.as_ref()).await;
        assert_eq!(
            outcome.unwrap_or_else(|e| panic!("{e}\n{}", reg.log())),
            PushOutcome::Pushed,
            "{}",
            d.digest()
        );
    }
    let outcome = pusher.push(&root, store.as_ref()).await;
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("{e}\n{}", reg.log())),
        PushOutcome::Pushed
    );

    // The registry serves exactly the stored manifest bytes under the tag and the digest.
    assert_eq!(reg.inspect_raw("b/img:copy").unwrap(), img.root_bytes);
    let (_, pushed) = r.resolve(&format!("{host}/b/img:copy")).await.unwrap();
    assert_eq!(pushed, root);
    let fb = r.fetcher(&format!("{host}/b/img:copy")).await.unwrap();
    for d in &img.children {
        let bytes = common::fetch_all(fb.as_ref(), d).await.unwrap();
        assert_eq!(bytes.len() as u64, d.size());
    }

    // A second push finds everything present, the tag included.
    for d in img.children.iter().chain(std::iter::once(&root)) {
        let outcome = pusher.push(d, store.as_ref()).await.unwrap();
        assert_eq!(outcome, PushOutcome::AlreadyPresent, "{}", d.digest());
    }

    // By digest (no tag), a manifest already in the repository is present too.
    let by_digest = r
        .pusher(&format!("{host}/b/img@{}", root.digest()))
        .await
        .unwrap();
    let outcome = by_digest.push(&root, store.as_ref()).await.unwrap();
    assert_eq!(outcome, PushOutcome::AlreadyPresent);
}

#[tokio::test]
async fn pushes_from_a_store_and_re_push_finds_everything_present_without_auth() {
    push_from_the_store_in(AuthMode::None).await;
}

#[tokio::test]
async fn pushes_from_a_store_and_re_push_finds_everything_present_with_htpasswd() {
    push_from_the_store_in(AuthMode::Htpasswd).await;
}

#[tokio::test]
async fn pushes_from_a_store_and_re_push_finds_everything_present_with_a_token_server() {
    push_from_the_store_in(AuthMode::Token).await;
}

#[tokio::test]
async fn a_tag_that_names_another_digest_is_pushed_over() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let host = reg.host();
    let mut layout = OciLayout::new().unwrap();
    let one = layout
        .add_image(
            Some("one"),
            &Platform::new("linux", "amd64"),
            &[("f", b"1")],
        )
        .unwrap();
    let two = layout
        .add_image(
            Some("two"),
            &Platform::new("linux", "amd64"),
            &[("f", b"2")],
        )
        .unwrap();
    reg.push(layout.path(), "one", "src/img:one", Push::oci())
        .unwrap();
    reg.push(layout.path(), "two", "src/img:two", Push::oci())
        .unwrap();
    let r = common::resolver(&reg);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path().join("content")).unwrap());
    for (tag, built) in [("one", &one), ("two", &two)] {
        let (name, root) = r.resolve(&format!("{host}/src/img:{tag}")).await.unwrap();
        let f: Arc<dyn Fetcher> = Arc::from(r.fetcher(&name).await.unwrap());
        let h = fetch_handler(store.clone(), f);
        for d in std::iter::once(&root).chain(&built.children) {
            h.handle(d).await.unwrap();
        }
    }

    let pusher = r.pusher(&format!("{host}/dst/img:latest")).await.unwrap();
    for built in [&one, &two] {
        for d in built.children.iter().chain(std::iter::once(&built.root)) {
            pusher.push(d, store.as_ref()).await.unwrap();
        }
        // The tag moved: the HEAD saw the old digest, so the manifest was PUT.
        assert_eq!(reg.inspect_raw("dst/img:latest").unwrap(), built.root_bytes);
    }
}

#[tokio::test]
async fn a_blob_missing_from_the_provider_is_not_found_and_nothing_is_uploaded() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let r = common::resolver(&reg);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    let d = common::desc(b"never stored", MediaType::ImageLayerGzip);
    let pusher = r.pusher(&format!("{}/x/y:z", reg.host())).await.unwrap();
    let err = pusher.push(&d, &store).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // The provider is asked before an upload is opened: the registry has no such blob.
    let f = r.fetcher(&format!("{}/x/y:z", reg.host())).await.unwrap();
    let err = common::fetch_all(f.as_ref(), &d).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// A store holding `bytes` as a layer, with its descriptor.
async fn store_with(bytes: &[u8], mt: MediaType) -> (tempfile::TempDir, LocalStore, Descriptor) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path().join("content")).unwrap();
    let d = common::desc(bytes, mt);
    dist_content::write_blob(&store, "t", &d, bytes)
        .await
        .unwrap();
    (dir, store, d)
}

/// The faults below come from scripted servers: a real registry does not send its uploads
/// to another host or lie about the digest it stored.
#[tokio::test]
async fn authorization_stays_off_an_upload_location_on_another_host_whose_query_is_kept() {
    let reg = HostileRegistry::start().unwrap();
    let storage = HostileRegistry::start().unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    reg.guard(format!("Basic {basic}"), r#"Basic realm="test""#);
    let blob = common::data(600 * 1024);
    let (_dir, store, d) = store_with(&blob, MediaType::ImageLayerGzip).await;
    reg.route(
        "/v2/repo/blobs/uploads/",
        Response::status(202).header(
            "Location",
            format!("{}/upload/1?_state=s%3D", storage.url()),
        ),
    );
    storage.route(
        "/upload/1",
        Response::status(201).header("Docker-Content-Digest", d.digest().to_string()),
    );

    let opts = common::options(&reg.host(), AuthMode::Htpasswd, PASSWORD);
    let r = DockerResolver::new(opts);
    let pusher = r.pusher(&format!("{}/repo:t", reg.host())).await.unwrap();
    assert_eq!(pusher.push(&d, &store).await.unwrap(), PushOutcome::Pushed);

    let posts: Vec<_> = reg
        .authorized_requests()
        .into_iter()
        .filter(|q| q.method == "POST")
        .collect();
    assert_eq!(
        posts.len(),
        1,
        "the POST carried the registry's credentials"
    );
    let puts = storage.requests();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].method, "PUT");
    assert_eq!(puts[0].header("authorization"), None);
    assert_eq!(
        puts[0].header("content-length"),
        Some(blob.len().to_string().as_str())
    );
    assert_eq!(
        puts[0].query(),
        vec![
            ("_state".to_string(), "s=".to_string()),
            ("digest".to_string(), d.digest().to_string()),
        ]
    );
    assert!(puts[0].body == blob, "the streamed body is the blob");
}

#[tokio::test]
async fn a_relative_location_answered_204_is_pushed_and_a_wrong_stored_digest_is_a_mismatch() {
    let reg = HostileRegistry::start().unwrap();
    let (_dir, store, d) = store_with(b"layer bytes", MediaType::ImageLayerGzip).await;
    reg.route(
        "/v2/repo/blobs/uploads/",
        Response::status(202).header("Location", "/v2/repo/blobs/uploads/u1"),
    );
    reg.route(
        "/v2/repo/blobs/uploads/u1",
        Response::status(204).header("Docker-Content-Digest", d.digest().to_string()),
    );
    let r = DockerResolver::new(common::fault_options(&reg.host()));
    let pusher = r.pusher(&format!("{}/repo:t", reg.host())).await.unwrap();
    assert_eq!(pusher.push(&d, &store).await.unwrap(), PushOutcome::Pushed);

    let other = dist_content::sha256_of(b"something else");
    reg.route(
        "/v2/repo/blobs/uploads/u1",
        Response::status(201).header("Docker-Content-Digest", other.to_string()),
    );
    let err = pusher.push(&d, &store).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn a_manifest_is_put_with_its_media_type_and_exact_bytes() {
    let reg = HostileRegistry::start().unwrap();
    // Odd spacing and key order: re-serialising would change these bytes.
    let manifest = br#"{ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [], "config": {"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"} }"#;
    let (_dir, store, d) = store_with(manifest, MediaType::ImageManifest).await;
    let digest = d.digest().to_string();
    reg.route_fn("/v2/repo/manifests/t", move |q| match q.method.as_str() {
        "PUT" => Response::status(201).header("Docker-Content-Digest", digest.clone()),
        _ => Response::status(404),
    });
    let r = DockerResolver::new(common::fault_options(&reg.host()));
    let pusher = r.pusher(&format!("{}/repo:t", reg.host())).await.unwrap();
    let outcome = pusher.push(&d, &store).await;
    let puts: Vec<_> = reg
        .requests()
        .into_iter()
        .filter(|q| q.method == "PUT")
        .collect();
    assert_eq!(outcome.unwrap(), PushOutcome::Pushed);
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path(), "/v2/repo/manifests/t");
    assert_eq!(
        puts[0].header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert!(
        puts[0].body == manifest,
        "the stored bytes, not re-serialised"
    );
}

#[tokio::test]
async fn an_upload_answered_503_starts_over_with_a_new_upload_and_a_fresh_body() {
    let reg = HostileRegistry::start().unwrap();
    let blob = common::data(300 * 1024);
    let (_dir, store, d) = store_with(&blob, MediaType::ImageLayerGzip).await;
    reg.route(
        "/v2/repo/blobs/uploads/",
        Response::status(202).header("Location", "/v2/repo/blobs/uploads/u1"),
    );
    let puts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (n, digest) = (puts.clone(), d.digest().to_string());
    reg.route_fn("/v2/repo/blobs/uploads/u1", move |_| {
        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Response::status(503)
        } else {
            Response::status(201).header("Docker-Content-Digest", digest.clone())
        }
    });
    let r = DockerResolver::new(common::fault_options(&reg.host()));
    let pusher = r.pusher(&format!("{}/repo:t", reg.host())).await.unwrap();
    assert_eq!(pusher.push(&d, &store).await.unwrap(), PushOutcome::Pushed);

    let log = reg.requests();
    let count = |m: &str| log.iter().filter(|q| q.method == m).count();
    assert_eq!(
        (count("POST"), count("PUT")),
        (2, 2),
        "a new upload each time"
    );
    let last = log.iter().rfind(|q| q.method == "PUT").unwrap();
    assert!(
        last.body == blob,
        "the second PUT sent the whole blob again"
    );
}

#[tokio::test]
async fn a_manifest_whose_blobs_the_registry_lacks_is_refused_with_manifest_blob_unknown() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let r = common::resolver(&reg);
    // Its config (`{}`) was never pushed.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    let (_dir, store, d) = store_with(manifest, MediaType::ImageManifest).await;
    let pusher = r.pusher(&format!("{}/x/y:z", reg.host())).await.unwrap();
    let err = pusher.push(&d, &store).await.unwrap_err();
    // Branched on by the registry's code, not its status.
    assert_eq!(
        err.code(),
        Some(&dist_remotes::ErrorCode::ManifestBlobUnknown),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}
