use futures::TryStreamExt;
use oci_spec::image::{Descriptor, MediaType};

use super::*;
use crate::ErrorKind;

#[test]
fn locators_are_told_apart_from_registry_references() {
    let loc = |s: &str| LayoutLocator::parse(s).map(|r| r.unwrap());
    let l = loc("oci:./out:latest").unwrap();
    assert_eq!(
        (l.dir.to_str(), l.tag.as_deref()),
        (Some("./out"), Some("latest"))
    );
    let l = loc("oci:.").unwrap();
    assert_eq!((l.dir.to_str(), l.tag), (Some("."), None));
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let l = loc(&format!("oci:/srv/x@{d}")).unwrap();
    assert_eq!(l.digest.as_ref().unwrap().to_string(), d);
    assert_eq!(l.to_string(), format!("oci:/srv/x@{d}"));
    // Registry references, including ones that start with `oci:`.
    for reference in [
        "oci:v1",
        "oci:5000/app:1",
        "oci",
        "docker.io/library/oci:latest",
    ] {
        assert!(!LayoutLocator::is_locator(reference), "{reference}");
    }
    for bad in ["oci:/x:", "oci:/x@sha256:zz", "oci:/x:t@sha256:00"] {
        let err = LayoutLocator::parse(bad).unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}: {err}");
    }
}

/// A source store holding a one-layer image; returns the store, its blobs in push order
/// (children first) and the manifest's descriptor.
async fn source_image() -> (tempfile::TempDir, dist_content::LocalStore, Vec<Descriptor>) {
    let dir = tempfile::tempdir().unwrap();
    let store = dist_content::LocalStore::open(dir.path()).unwrap();
    let put = |mt: MediaType, body: Vec<u8>| {
        let store = store.clone();
        async move {
            let desc = Descriptor::new(mt, body.len() as u64, dist_content::sha256_of(&body));
            dist_content::write_blob(&store, "t", &desc, &body[..])
                .await
                .unwrap();
            desc
        }
    };
    let layer = put(MediaType::ImageLayer, b"not really a tar".to_vec()).await;
    let config = put(MediaType::ImageConfig, br#"{"rootfs":{}}"#.to_vec()).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let manifest = put(
        MediaType::ImageManifest,
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    (dir, store, vec![layer, config, manifest])
}

#[tokio::test]
async fn pushed_image_resolves_and_fetches_back_from_the_layout() {
    let (_src, store, descs) = source_image().await;
    let out = tempfile::tempdir().unwrap();
    let name = format!("oci:{}:v1", out.path().display());
    let resolver = LayoutResolver::new();
    let pusher = resolver.pusher(&name).await.unwrap();
    for desc in &descs {
        assert_eq!(
            pusher.push(desc, &store).await.unwrap(),
            PushOutcome::Pushed
        );
    }
    assert_eq!(
        pusher.push(&descs[0], &store).await.unwrap(),
        PushOutcome::AlreadyPresent
    );
    let (resolved, root) = resolver.resolve(&name).await.unwrap();
    assert_eq!(resolved, name);
    assert_eq!(root.digest(), descs[2].digest());
    assert_eq!(root.media_type(), &MediaType::ImageManifest);

    let fetcher = resolver.fetcher(&resolved).await.unwrap();
    for desc in &descs {
        let got: Vec<u8> = fetcher
            .fetch(desc)
            .await
            .unwrap()
            .map_ok(|b| b.to_vec())
            .try_concat()
            .await
            .unwrap();
        let want = dist_content::read_blob(&store, desc, 1 << 20)
            .await
            .unwrap();
        assert_eq!(got, want);
    }
    // By digest too, with the media type read from the body.
    let by_digest = format!("oci:{}@{}", out.path().display(), descs[2].digest());
    let (_, root) = resolver.resolve(&by_digest).await.unwrap();
    assert_eq!(root.media_type(), &MediaType::ImageManifest);
    assert_eq!(root.size(), descs[2].size());
}

#[tokio::test]
async fn a_corrupted_layout_blob_fails_the_fetch_instead_of_passing_through() {
    let (_src, store, descs) = source_image().await;
    let out = tempfile::tempdir().unwrap();
    let name = format!("oci:{}:v1", out.path().display());
    let resolver = LayoutResolver::new();
    let pusher = resolver.pusher(&name).await.unwrap();
    for desc in &descs {
        pusher.push(desc, &store).await.unwrap();
    }
    // Same size, other bytes: a bit flip on disk.
    let path = out
        .path()
        .join("blobs/sha256")
        .join(descs[0].digest().digest());
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, b"NOT really a tar").unwrap();
    let fetcher = resolver.fetcher(&name).await.unwrap();
    let got: Result<Vec<Bytes>> = fetcher.fetch(&descs[0]).await.unwrap().try_collect().await;
    assert!(got.is_err(), "corrupt blob fetched");
}

#[tokio::test]
async fn resolving_a_missing_tag_or_layout_is_not_found() {
    let out = tempfile::tempdir().unwrap();
    let resolver = LayoutResolver::new();
    let err = resolver
        .resolve(&format!("oci:{}:v1", out.path().display()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    LayoutStore::create(out.path()).unwrap();
    let err = resolver
        .resolve(&format!("oci:{}:v1", out.path().display()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
