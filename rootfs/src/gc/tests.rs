use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dist_content::{LeaseOptions, LocalStore, Manager, Resource};
use dist_images::gc::{LABEL_GC_EXPIRE, LABEL_GC_ROOT, children_gc_labels, label_snapshot};
use dist_images::{FsImageStore, Image, ImageStore};
use oci_spec::image::{Descriptor, Digest, MediaType};

use super::*;
use crate::{NativeSnapshotter, Snapshotter};

struct Root {
    _tmp: tempfile::TempDir,
    content: Arc<LocalStore>,
    leases: Leases,
    images: FsImageStore,
    native: NativeSnapshotter,
}

fn root() -> Root {
    let tmp = tempfile::tempdir().unwrap();
    let content = Arc::new(LocalStore::open(tmp.path().join("content")).unwrap());
    Root {
        leases: content.leases().unwrap(),
        content,
        images: FsImageStore::open(tmp.path().join("images")).unwrap(),
        native: NativeSnapshotter::new(tmp.path().join("native")).unwrap(),
        _tmp: tmp,
    }
}

impl Root {
    async fn put(&self, mt: MediaType, bytes: &[u8]) -> Descriptor {
        let desc = Descriptor::new(mt, bytes.len() as u64, dist_content::sha256_of(bytes));
        dist_content::write_blob(
            &*self.content,
            &format!("w-{}", desc.digest()),
            &desc,
            bytes,
        )
        .await
        .unwrap();
        desc
    }

    /// A manifest over `layers` with a config, labelled as a pull labels it (or not).
    async fn image(
        &self,
        name: &str,
        layers: &[&[u8]],
        labelled: bool,
    ) -> (Descriptor, Vec<Descriptor>) {
        let config = self
            .put(
                MediaType::ImageConfig,
                format!("{{\"n\":\"{name}\"}}").as_bytes(),
            )
            .await;
        let mut children = vec![config.clone()];
        for l in layers {
            children.push(self.put(MediaType::ImageLayer, l).await);
        }
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": children[0],
            "layers": children[1..],
        });
        let manifest = self
            .put(
                MediaType::ImageManifest,
                &serde_json::to_vec(&body).unwrap(),
            )
            .await;
        if labelled {
            self.content
                .update_labels(manifest.digest(), children_gc_labels(&children))
                .await
                .unwrap();
        }
        self.images
            .create(Image::new(name, manifest.clone()))
            .await
            .unwrap();
        (manifest, children)
    }

    async fn gc(&self, opts: GcOptions) -> GcReport {
        let snaps: [NamedSnapshotter<'_>; 1] = [("native", &self.native)];
        collect_garbage(&*self.content, &self.leases, &self.images, &snaps, &opts)
            .await
            .unwrap()
    }

    async fn has(&self, d: &Digest) -> bool {
        self.content.info(d).await.is_ok()
    }
}

fn removed(report: &GcReport, kind: RemovedKind) -> Vec<String> {
    let mut names: Vec<String> = report
        .removed
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn blobs_of_a_removed_image_go_and_shared_ones_stay() {
    let r = root();
    let (m1, c1) = r.image("one", &[b"shared", b"only-one"], true).await;
    let (m2, c2) = r.image("two", &[b"shared", b"only-two"], true).await;
    r.images.delete("one").await.unwrap();
    let report = r.gc(GcOptions::default()).await;
    let mut want = vec![
        m1.digest().to_string(),
        c1[0].digest().to_string(),
        c1[2].digest().to_string(),
    ];
    want.sort();
    assert_eq!(removed(&report, RemovedKind::Blob), want);
    let freed: u64 = m1.size() + c1[0].size() + c1[2].size();
    assert_eq!(report.bytes_freed, freed);
    for d in [&m2].into_iter().chain(&c2) {
        assert!(r.has(d.digest()).await, "{} was removed", d.digest());
    }
}

#[tokio::test]
async fn a_manifest_without_labels_is_read_for_its_children() {
    let r = root();
    let (m, c) = r.image("plain", &[b"a", b"b"], false).await;
    let stray = r.put(MediaType::ImageLayer, b"stray").await;
    let report = r.gc(GcOptions::default()).await;
    assert_eq!(
        removed(&report, RemovedKind::Blob),
        [stray.digest().to_string()]
    );
    for d in [&m].into_iter().chain(&c) {
        assert!(r.has(d.digest()).await);
    }
}

#[tokio::test]
async fn a_dry_run_reports_without_removing() {
    let r = root();
    let stray = r.put(MediaType::ImageLayer, b"stray").await;
    let report = r.gc(GcOptions::default().dry_run(true)).await;
    assert_eq!(
        removed(&report, RemovedKind::Blob),
        [stray.digest().to_string()]
    );
    assert!(r.has(stray.digest()).await);
}

#[tokio::test]
async fn gc_root_labels_keep_blobs_until_they_expire() {
    let r = root();
    let kept = r.put(MediaType::ImageLayer, b"kept").await;
    let expired = r.put(MediaType::ImageLayer, b"expired").await;
    let root_label = |expire: &str| {
        HashMap::from([
            (LABEL_GC_ROOT.to_owned(), "yes".to_owned()),
            (LABEL_GC_EXPIRE.to_owned(), expire.to_owned()),
        ])
    };
    r.content
        .update_labels(kept.digest(), root_label("2999-01-01T00:00:00Z"))
        .await
        .unwrap();
    r.content
        .update_labels(expired.digest(), root_label("2000-01-01T00:00:00Z"))
        .await
        .unwrap();
    let report = r.gc(GcOptions::default()).await;
    assert_eq!(
        removed(&report, RemovedKind::Blob),
        [expired.digest().to_string()]
    );
}

#[tokio::test]
async fn a_held_lease_protects_and_an_expired_one_is_removed_with_its_ingests() {
    let r = root();
    let blob = r.put(MediaType::ImageLayer, b"leased").await;
    let lease = r.leases.create(LeaseOptions::default()).await.unwrap();
    lease
        .attach(&[
            Resource::content(blob.digest()),
            Resource::ingest("partial"),
        ])
        .await
        .unwrap();
    let mut w =
        dist_content::Ingester::writer(&*r.content, dist_content::WriterOpts::new("partial"))
            .await
            .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut w, b"half")
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::flush(&mut w).await.unwrap();
    drop(w);
    let report = r.gc(GcOptions::default().lease_grace(Duration::ZERO)).await;
    assert!(report.removed.is_empty(), "{report:?}");
    let id = lease.id().to_owned();
    drop(lease); // the holder is gone; no grace
    let report = r.gc(GcOptions::default().lease_grace(Duration::ZERO)).await;
    assert_eq!(
        removed(&report, RemovedKind::Blob),
        [blob.digest().to_string()]
    );
    assert_eq!(removed(&report, RemovedKind::Ingest), ["partial"]);
    assert_eq!(removed(&report, RemovedKind::Lease), [id]);
    assert!(r.leases.list().await.unwrap().is_empty());
}

async fn commit(s: &NativeSnapshotter, name: &str, parent: Option<&str>) {
    let key = format!("prep-{name}");
    s.prepare(&key, parent).await.unwrap();
    s.commit(name, &key).await.unwrap();
}

async fn snapshot_names(s: &NativeSnapshotter) -> Vec<String> {
    let mut names = Vec::new();
    s.walk(&mut |i| {
        names.push(i.name);
        Ok(())
    })
    .await
    .unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn snapshots_a_config_names_keep_their_parents_and_the_rest_go_children_first() {
    let r = root();
    commit(&r.native, "a", None).await;
    commit(&r.native, "b", Some("a")).await;
    commit(&r.native, "c", Some("b")).await;
    commit(&r.native, "x", Some("a")).await;
    commit(&r.native, "y", Some("x")).await;
    let (_, children) = r.image("img", &[b"l"], true).await;
    label_snapshot(&*r.content, children[0].digest(), "native", "b")
        .await
        .unwrap();
    let report = r.gc(GcOptions::default()).await;
    let order: Vec<&str> = report
        .removed
        .iter()
        .filter(|r| r.kind == RemovedKind::Snapshot)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(order, ["c", "y", "x"]);
    assert_eq!(snapshot_names(&r.native).await, ["a", "b"]);
}

#[tokio::test]
async fn a_leased_snapshot_is_kept() {
    let r = root();
    commit(&r.native, "a", None).await;
    let lease = r.leases.create(LeaseOptions::default()).await.unwrap();
    lease
        .attach(&[Resource::snapshot("native", "a")])
        .await
        .unwrap();
    let report = r.gc(GcOptions::default()).await;
    assert!(report.removed.is_empty(), "{report:?}");
    lease.release().await.unwrap();
    let report = r.gc(GcOptions::default()).await;
    assert_eq!(removed(&report, RemovedKind::Snapshot), ["a"]);
}
