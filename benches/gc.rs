//! `dist_rootfs::collect_garbage` over generated metadata: 1,000 images in groups of 50
//! sharing four of their five layers, each unpacked into a chain of native snapshots and
//! recorded under a name, plus 100 removed images whose blobs and top snapshots are
//! garbage. Goal: one collection under 1 s.
//!
//! The blobs are a few bytes each (the collector never reads a layer, and reads manifests
//! only when they carry no labels, which these do), so what is measured is the walk of
//! the store, its labels, the image records and the snapshot records. The measured run is
//! a dry run, so every iteration sees the same root; a real run adds the removals.
//!
//! `DIST_BENCH_DIR` chooses where the root lives (default `/dev/shm/dist-bench-gc`).
//! Run with `cargo bench --bench gc`; `cargo test --all-targets` smoke-runs it with 100
//! images.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dist_content::{LocalStore, Manager, write_blob};
use dist_images::gc::{children_gc_labels, label_snapshot};
use dist_images::{FsImageStore, Image, ImageStore};
use dist_rootfs::{
    DiffId, GcOptions, NamedSnapshotter, NativeSnapshotter, Snapshotter, chain_ids, collect_garbage,
};
use oci_spec::image::{Descriptor, MediaType};

const GROUP: usize = 50;
const SHARED: usize = 4;

fn images() -> usize {
    if common::benchmarking() { 1000 } else { 100 }
}

struct Root {
    _dir: tempfile::TempDir,
    content: LocalStore,
    images: FsImageStore,
    native: NativeSnapshotter,
}

async fn put(store: &LocalStore, mt: MediaType, bytes: &[u8]) -> Descriptor {
    let desc = Descriptor::new(mt, bytes.len() as u64, dist_content::sha256_of(bytes));
    match write_blob(store, &format!("bench-{}", desc.digest()), &desc, bytes).await {
        Ok(()) => {}
        Err(e) if e.kind() == dist_content::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("{e}"),
    }
    desc
}

/// Commits the chain for `diff_ids` (what an unpack leaves) and returns its top.
async fn commit_chain(s: &NativeSnapshotter, diff_ids: &[DiffId]) -> String {
    let chain = chain_ids(diff_ids);
    for (i, c) in chain.iter().enumerate() {
        if s.stat(c.as_ref()).await.is_ok() {
            continue;
        }
        let parent = i.checked_sub(1).map(|p| chain[p].to_string());
        let key = format!("prep-{c}");
        s.prepare(&key, parent.as_deref()).await.unwrap();
        s.commit(c.as_ref(), &key).await.unwrap();
    }
    chain.last().unwrap().to_string()
}

async fn build(n: usize) -> Root {
    let base = common::bench_dir("dist-bench-gc");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let content = LocalStore::open(dir.path().join("content")).unwrap();
    let images = FsImageStore::open(dir.path().join("images")).unwrap();
    let native = NativeSnapshotter::new(dir.path().join("native")).unwrap();
    for i in 0..n + n / 10 {
        let group = i % GROUP.max(1);
        let mut children = Vec::new();
        let mut diff_ids = Vec::new();
        let config = put(
            &content,
            MediaType::ImageConfig,
            format!("{{\"image\":{i}}}").as_bytes(),
        )
        .await;
        children.push(config.clone());
        for l in 0..=SHARED {
            let body = if l < SHARED {
                format!("group {group} layer {l}")
            } else {
                format!("image {i} own layer")
            };
            let layer = put(&content, MediaType::ImageLayerGzip, body.as_bytes()).await;
            diff_ids.push(dist_content::sha256_of(format!("diff {body}").as_bytes()));
            children.push(layer);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": children[0],
            "layers": children[1..],
        });
        let manifest = put(
            &content,
            MediaType::ImageManifest,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
        content
            .update_labels(manifest.digest(), children_gc_labels(&children))
            .await
            .unwrap();
        let top = commit_chain(&native, &diff_ids).await;
        label_snapshot(&content, config.digest(), "native", &top)
            .await
            .unwrap();
        // The first `n` are named; the rest are garbage.
        if i < n {
            images
                .create(Image::new(format!("bench.example/img:{i}"), manifest))
                .await
                .unwrap();
        }
    }
    Root {
        _dir: dir,
        content,
        images,
        native,
    }
}

fn gc(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n = images();
    let root = rt.block_on(build(n));
    let leases = root.content.leases().unwrap();
    let opts = GcOptions::default().dry_run(true);
    let run = || {
        rt.block_on(async {
            let snaps: [NamedSnapshotter<'_>; 1] = [("native", &root.native)];
            collect_garbage(&root.content, &leases, &root.images, &snaps, &opts)
                .await
                .unwrap()
        })
    };
    let report = run();
    // The 10% removed images: manifest, config and own layer each, and their top snapshot.
    let extra = n / 10;
    let kinds: HashMap<_, usize> = report.removed.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.kind).or_default() += 1;
        m
    });
    assert_eq!(report.removed.len(), extra * 4, "{kinds:?}");
    let mut group = c.benchmark_group("gc");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(format!("collect_{n}_images_dry_run"), |b| b.iter(run));
    group.finish();
}

criterion_group!(benches, gc);
criterion_main!(benches);
