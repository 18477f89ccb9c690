use std::collections::BTreeSet;

use oci_spec::image::{Descriptor, MediaType};

use super::*;
use crate::{ErrorKind, read_blob, sha256_of, testsuite, write_blob};

fn manifest_desc(body: &[u8]) -> Descriptor {
    Descriptor::new(MediaType::ImageManifest, body.len() as u64, sha256_of(body))
}

fn top_level(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[tokio::test]
async fn layout_store_passes_the_content_store_conformance_suite() {
    let results = testsuite::run_all(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::create(dir.path()).unwrap();
        (store, dir)
    })
    .await;
    for (name, result) in &results {
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[tokio::test]
async fn create_writes_a_spec_layout_and_blobs_land_under_blobs_alg_hex() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutStore::create(dir.path()).unwrap();
    let body = br#"{"schemaVersion":2}"#;
    let desc = manifest_desc(body);
    write_blob(&layout, "m", &desc, &body[..]).await.unwrap();
    layout.tag("latest", &desc).await.unwrap();

    let oci_layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["manifests"][0]["annotations"][ANNOTATION_REF_NAME],
        "latest"
    );
    let blob = dir.path().join("blobs/sha256").join(desc.digest().digest());
    assert_eq!(std::fs::read(blob).unwrap(), body);
    // Nothing at the top level but the layout's own files and our hidden state.
    assert_eq!(
        top_level(dir.path()),
        BTreeSet::from([".dist", "blobs", "index.json", "oci-layout"].map(String::from))
    );
}

#[tokio::test]
async fn reading_a_foreign_layout_writes_nothing_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let body = br#"{"schemaVersion":2}"#;
    let desc = manifest_desc(body);
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(desc.digest().digest()), body).unwrap();
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
    // As skopeo writes it: the tag alone in ref.name.
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
        desc.digest(),
        body.len()
    );
    std::fs::write(dir.path().join("index.json"), index).unwrap();
    let before = top_level(dir.path());

    let layout = LayoutStore::open(dir.path()).unwrap();
    let found = layout.resolve("v1").await.unwrap();
    assert_eq!(found.digest(), desc.digest());
    assert_eq!(layout.resolve("").await.unwrap().digest(), desc.digest());
    assert_eq!(read_blob(&layout, &found, 1024).await.unwrap(), body);
    assert_eq!(top_level(dir.path()), before);
}

#[tokio::test]
async fn containerd_export_entries_resolve_by_full_name_and_by_tag() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutStore::create(dir.path()).unwrap();
    let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0,"annotations":{"io.containerd.image.name":"docker.io/library/busybox:1.36","org.opencontainers.image.ref.name":"1.36"}}]}"#;
    std::fs::write(dir.path().join("index.json"), index).unwrap();
    let by_tag = layout.resolve("1.36").await.unwrap();
    let by_name = layout
        .resolve("docker.io/library/busybox:1.36")
        .await
        .unwrap();
    assert_eq!(by_tag, by_name);
    assert_eq!(
        ref_names(&by_tag),
        (Some("1.36"), Some("docker.io/library/busybox:1.36"))
    );
    let err = layout.resolve("2").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn open_refuses_a_directory_that_is_not_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let err = LayoutStore::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("not an OCI image layout"), "{err}");
    std::fs::write(
        dir.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"9"}"#,
    )
    .unwrap();
    let err = LayoutStore::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn retagging_moves_the_tag_and_keeps_unknown_index_fields() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutStore::create(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("index.json"),
        r#"{"schemaVersion":2,"manifests":[],"annotations":{"keep":"me"}}"#,
    )
    .unwrap();
    let a = manifest_desc(b"a");
    let b = manifest_desc(b"b");
    layout.tag("t", &a).await.unwrap();
    layout.tag("other", &a).await.unwrap();
    layout.tag("t", &b).await.unwrap();
    assert_eq!(layout.resolve("t").await.unwrap().digest(), b.digest());
    assert_eq!(layout.entries().await.unwrap().len(), 2);
    layout.untag("t").await.unwrap();
    assert_eq!(
        layout.untag("t").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["annotations"]["keep"], "me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_taggers_never_lose_each_others_entries() {
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutStore::create(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        // A store per task, as separate processes would open it.
        let layout = LayoutStore::open(layout.dir()).unwrap();
        tasks.push(tokio::spawn(async move {
            let desc = manifest_desc(format!("m{i}").as_bytes());
            layout.tag(&format!("t{i}"), &desc).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let tags: BTreeSet<String> = layout
        .entries()
        .await
        .unwrap()
        .iter()
        .filter_map(|d| ref_names(d).0.map(str::to_owned))
        .collect();
    assert_eq!(tags, (0..24).map(|i| format!("t{i}")).collect());
    let leftovers: Vec<_> = top_level(dir.path())
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
