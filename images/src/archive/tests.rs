use std::io::{Cursor, Write};
use std::sync::Arc;

use dist_content::{LocalStore, Manager, Provider, sha256_of, write_blob};
use oci_spec::image::{Descriptor, MediaType};

use super::*;
use crate::{ErrorKind, FsImageStore, Image, ImageStore};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<LocalStore>,
    images: FsImageStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStore::open(dir.path().join("content")).unwrap());
    let images = FsImageStore::open(dir.path().join("images")).unwrap();
    Fixture {
        _dir: dir,
        store,
        images,
    }
}

async fn put(store: &LocalStore, mt: MediaType, body: &[u8]) -> Descriptor {
    let desc = Descriptor::new(mt, body.len() as u64, sha256_of(body));
    write_blob(store, "t", &desc, body).await.unwrap();
    desc
}

/// A one-layer manifest for `arch`; returns its descriptor (with the platform) and blobs.
async fn manifest(store: &LocalStore, arch: &str) -> (Descriptor, Vec<Descriptor>) {
    let mut layer = vec![0x1f, 0x8b];
    layer.extend_from_slice(format!("layer-{arch}").as_bytes());
    let layer = put(store, MediaType::ImageLayerGzip, &layer).await;
    let config = serde_json::json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}});
    let config = put(
        store,
        MediaType::ImageConfig,
        &serde_json::to_vec(&config).unwrap(),
    )
    .await;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let mut m = put(
        store,
        MediaType::ImageManifest,
        &serde_json::to_vec(&body).unwrap(),
    )
    .await;
    m.set_platform(Some(
        crate::platforms::parse(&format!("linux/{arch}")).unwrap(),
    ));
    (m.clone(), vec![m, config, layer])
}

async fn index_of(store: &LocalStore, manifests: &[Descriptor]) -> Descriptor {
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    put(
        store,
        MediaType::ImageIndex,
        &serde_json::to_vec(&body).unwrap(),
    )
    .await
}

/// Export into a buffer.
async fn export_to_vec(
    store: &Arc<LocalStore>,
    images: &[Image],
    opts: &ExportOptions,
) -> (Vec<u8>, ExportReport) {
    let buf = SharedBuf::default();
    let report = export(Arc::clone(store), images, buf.clone(), opts)
        .await
        .unwrap();
    (buf.take(), report)
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tar_paths(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(Cursor::new(tar_bytes));
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

async fn blob_present(store: &LocalStore, d: &Descriptor) -> bool {
    store.reader_at(d).await.is_ok()
}

#[tokio::test]
async fn export_then_import_round_trips_blobs_and_names() {
    let src = fixture();
    let (m, blobs) = manifest(&src.store, "amd64").await;
    let image = Image::new("docker.io/library/app:1", m.clone());
    let (tar_bytes, report) = export_to_vec(&src.store, &[image], &ExportOptions::default()).await;
    assert_eq!(report.blobs.len(), 3);
    let paths = tar_paths(&tar_bytes);
    for want in ["oci-layout", "index.json", "manifest.json"] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} missing from {paths:?}"
        );
    }
    let dst = fixture();
    let report = import(
        Arc::clone(&dst.store),
        &dst.images,
        Cursor::new(tar_bytes),
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.images.len(), 1);
    assert_eq!(report.images[0].name, "docker.io/library/app:1");
    assert_eq!(report.images[0].target.digest(), m.digest());
    assert_eq!(report.blobs_written, 3);
    for b in &blobs {
        assert!(blob_present(&dst.store, b).await, "{}", b.digest());
    }
}

#[tokio::test]
async fn an_index_naming_a_platform_the_archive_lacks_imports_the_other_and_reports_it() {
    let src = fixture();
    let (amd, _) = manifest(&src.store, "amd64").await;
    let (arm, arm_blobs) = manifest(&src.store, "arm64").await;
    let index = index_of(&src.store, &[amd.clone(), arm.clone()]).await;
    // The store loses arm64's layer: the default export carries amd64 only.
    src.store.delete(arm_blobs[2].digest()).await.unwrap();
    let image = Image::new("example.com/multi:1", index.clone());
    let (tar_bytes, report) = export_to_vec(&src.store, &[image], &ExportOptions::default()).await;
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].label.starts_with("linux/arm64"),
        "{:?}",
        report.skipped
    );

    let dst = fixture();
    let report = import(
        Arc::clone(&dst.store),
        &dst.images,
        Cursor::new(tar_bytes),
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.images[0].target.digest(), index.digest());
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].descriptor.digest(), arm.digest());
    let m = crate::PlatformMatcher::exact(&crate::platforms::parse("linux/amd64").unwrap());
    let image = dst.images.get("example.com/multi:1").await.unwrap();
    let chosen = image.manifest(&*dst.store, &m).await.unwrap();
    assert_eq!(chosen.descriptor.digest(), amd.digest());
}

#[tokio::test]
async fn export_with_all_platforms_fails_when_one_is_absent() {
    let src = fixture();
    let (amd, _) = manifest(&src.store, "amd64").await;
    let arm_body = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
    let mut arm = Descriptor::new(
        MediaType::ImageManifest,
        arm_body.len() as u64,
        sha256_of(arm_body),
    );
    arm.set_platform(Some(crate::platforms::parse("linux/arm64").unwrap()));
    let index = index_of(&src.store, &[amd, arm]).await;
    let opts = ExportOptions::default().with_platforms(PlatformChoice::All);
    let err = export(
        Arc::clone(&src.store),
        &[Image::new("example.com/m:1", index)],
        SharedBuf::default(),
        &opts,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Rewrites the archive with `f` applied to each (path, bytes).
fn rewrite(
    tar_bytes: &[u8],
    f: impl Fn(&str, Vec<u8>) -> Vec<u8>,
    order: impl Fn(&str) -> u8,
) -> Vec<u8> {
    let mut a = tar::Archive::new(Cursor::new(tar_bytes));
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if !e.header().entry_type().is_file() {
            continue;
        }
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        let b = f(&p, b);
        files.push((p, b));
    }
    files.sort_by_key(|(p, _)| order(p));
    let mut out = tar::Builder::new(Vec::new());
    for (p, b) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(b.len() as u64);
        h.set_mode(0o644);
        out.append_data(&mut h, p, &b[..]).unwrap();
    }
    out.into_inner().unwrap()
}

#[tokio::test]
async fn index_before_blobs_imports_as_well() {
    let src = fixture();
    let (m, _) = manifest(&src.store, "amd64").await;
    let (tar_bytes, _) = export_to_vec(
        &src.store,
        &[Image::new("example.com/a:1", m)],
        &ExportOptions::default(),
    )
    .await;
    let reordered = rewrite(&tar_bytes, |_, b| b, |p| u8::from(p.starts_with("blobs/")));
    assert_eq!(
        tar_paths(&reordered)[0..2]
            .iter()
            .filter(|p| !p.starts_with("blobs"))
            .count(),
        2
    );
    let dst = fixture();
    let report = import(
        Arc::clone(&dst.store),
        &dst.images,
        Cursor::new(reordered),
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.images.len(), 1);
}

#[tokio::test]
async fn a_corrupt_blob_fails_the_import_commits_nothing_under_its_digest_and_records_no_image() {
    let src = fixture();
    let (m, blobs) = manifest(&src.store, "amd64").await;
    let (tar_bytes, _) = export_to_vec(
        &src.store,
        &[Image::new("example.com/a:1", m)],
        &ExportOptions::default(),
    )
    .await;
    let layer = blobs[2].digest().digest().to_owned();
    let corrupt = rewrite(
        &tar_bytes,
        |p, mut b| {
            if p.ends_with(&layer) {
                b[3] ^= 0xff;
            }
            b
        },
        |_| 0,
    );
    let dst = fixture();
    let err = import(
        Arc::clone(&dst.store),
        &dst.images,
        Cursor::new(corrupt),
        &ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(!blob_present(&dst.store, &blobs[2]).await);
    assert!(dst.images.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_truncated_archive_fails_cleanly_and_records_no_image() {
    let src = fixture();
    let (m, _) = manifest(&src.store, "amd64").await;
    let (tar_bytes, _) = export_to_vec(
        &src.store,
        &[Image::new("example.com/a:1", m)],
        &ExportOptions::default(),
    )
    .await;
    for cut in [
        tar_bytes.len() / 3,
        tar_bytes.len() / 2,
        tar_bytes.len() - 1100,
    ] {
        let dst = fixture();
        let result = import(
            Arc::clone(&dst.store),
            &dst.images,
            Cursor::new(tar_bytes[..cut].to_vec()),
            &ImportOptions::default(),
        )
        .await;
        assert!(result.is_err(), "cut at {cut} imported");
        assert!(dst.images.list().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_legacy_docker_save_archive_gets_a_schema2_manifest_and_its_repo_tags() {
    // docker save before 25: <id>/layer.tar (uncompressed), <config id>.json, manifest.json.
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let diff_id = sha256_of(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .unwrap();
    let config_id = sha256_of(&config).digest().to_owned();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": ["busybox:legacy"],
        "Layers": ["abc/layer.tar", "dup/layer.tar"],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (p, body) in [
        ("abc/layer.tar", &layer),
        (&format!("{config_id}.json"), &config),
        ("manifest.json", &manifest),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, &body[..]).unwrap();
    }
    // docker save links a repeated layer to the first copy.
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "dup/layer.tar", "../abc/layer.tar")
        .unwrap();
    let archive = b.into_inner().unwrap();

    let dst = fixture();
    let report = import(
        Arc::clone(&dst.store),
        &dst.images,
        Cursor::new(archive),
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    let image = &report.images[0];
    assert_eq!(image.name, "docker.io/library/busybox:legacy");
    assert_eq!(
        image.target.media_type().to_string(),
        crate::media_types::DOCKER_MANIFEST
    );
    let layers = image
        .layers(&*dst.store, &crate::platforms::AnyPlatform)
        .await;
    // Two layer entries, one blob (the symlink resolves to the first).
    let m = crate::read_manifest(&*dst.store, &image.target, &crate::Limits::DEFAULT)
        .await
        .unwrap();
    assert_eq!(m.layers().len(), 2);
    assert_eq!(m.layers()[0].digest(), &diff_id);
    assert_eq!(m.layers()[1].digest(), &diff_id);
    assert_eq!(
        m.layers()[0].media_type().to_string(),
        crate::media_types::DOCKER_LAYER
    );
    drop(layers);
}

#[tokio::test]
async fn a_name_is_refused_for_an_archive_of_several_images() {
    let src = fixture();
    let (a, _) = manifest(&src.store, "amd64").await;
    let (b, _) = manifest(&src.store, "arm64").await;
    let imgs = [
        Image::new("example.com/a:1", a),
        Image::new("example.com/b:1", b),
    ];
    let (tar_bytes, _) = export_to_vec(&src.store, &imgs, &ExportOptions::default()).await;
    let dst = fixture();
    let err = import(
        Arc::clone(&dst.store),
        &dst.images,
        Cursor::new(tar_bytes),
        &ImportOptions::default().with_name("example.com/c:1"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(dst.images.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn export_for_one_platform_carries_only_its_blobs() {
    let src = fixture();
    let (amd, amd_blobs) = manifest(&src.store, "amd64").await;
    let (arm, _) = manifest(&src.store, "arm64").await;
    let index = index_of(&src.store, &[amd, arm]).await;
    let m = crate::PlatformMatcher::exact(&crate::platforms::parse("linux/amd64").unwrap());
    let opts = ExportOptions::default().with_platforms(PlatformChoice::Matching(m));
    let (_, report) = export_to_vec(
        &src.store,
        &[Image::new("example.com/m:1", index.clone())],
        &opts,
    )
    .await;
    let mut got: Vec<String> = report
        .blobs
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    let mut want: Vec<String> = std::iter::once(&index)
        .chain(&amd_blobs)
        .map(|d| d.digest().to_string())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

#[tokio::test]
async fn an_absent_attestation_manifest_is_skipped_and_reported_as_such() {
    let src = fixture();
    let (amd, _) = manifest(&src.store, "amd64").await;
    let body = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
    let mut attestation =
        Descriptor::new(MediaType::ImageManifest, body.len() as u64, sha256_of(body));
    attestation.set_platform(Some(crate::platforms::parse("unknown/unknown").unwrap()));
    attestation.set_annotations(Some(
        [(
            ANNOTATION_REFERENCE_TYPE.to_owned(),
            ATTESTATION_MANIFEST.to_owned(),
        )]
        .into(),
    ));
    let index = index_of(&src.store, &[amd, attestation]).await;
    let (tar_bytes, _) = export_to_vec(
        &src.store,
        &[Image::new("example.com/att:1", index)],
        &ExportOptions::default(),
    )
    .await;
    let dst = fixture();
    let report = import(
        Arc::clone(&dst.store),
        &dst.images,
        Cursor::new(tar_bytes),
        &ImportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.images.len(), 1);
    let labels: Vec<_> = report.skipped.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["attestation"]);
}
