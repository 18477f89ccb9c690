//! Verifying a stored blob: streaming it out of a `dist_content::LocalStore` through
//! `dist_content::reader` into SHA-256 (dist-content's `Digester`, over the `sha2` crate)
//! against `sha256sum` on the same file. 512 MiB of pseudo-random data on tmpfs.
//!
//! `DIST_BENCH_DIR` sets the directory (default `/dev/shm/dist-digest-bench`).
//! Run: `cargo bench --bench digest`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{bench_dir, benchmarking, pseudo_random};
use criterion::Throughput;
use dist_content::{Digester, LocalStore, sha256_of, write_blob};
use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use tokio::io::AsyncReadExt;

async fn ours(store: &LocalStore, desc: &Descriptor) -> Duration {
    let t = Instant::now();
    let mut r = dist_content::reader(store, desc).await.unwrap();
    let mut h = Digester::for_digest(desc.digest()).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf).await.unwrap() {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    assert_eq!(h.finish(), *desc.digest());
    t.elapsed()
}

fn sha256sum(path: &std::path::Path) -> Duration {
    let t = Instant::now();
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "sha256sum failed");
    t.elapsed()
}

fn main() {
    let len = if benchmarking() { 512 << 20 } else { 1 << 20 };
    let base = bench_dir("dist-digest-bench");
    let _ = std::fs::remove_dir_all(&base);
    let store = LocalStore::open(&base).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bytes = pseudo_random(len);
    let digest = sha256_of(&bytes);
    let desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(digest)
        .size(len as u64)
        .build()
        .unwrap();
    rt.block_on(write_blob(&store, "bench", &desc, &bytes[..]))
        .unwrap();
    drop(bytes);
    let path = store.blob_path(desc.digest());

    let (mut a, mut b): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(rt.block_on(ours(&store, &desc)));
        b.push(sha256sum(&path));
    }
    a.sort();
    b.sort();
    eprintln!(
        "median: store reader + sha2 {:.2?}, sha256sum {:.2?}, ratio {:.2}",
        a[2],
        b[2],
        a[2].as_secs_f64() / b[2].as_secs_f64()
    );

    let mut c = common::few_long_runs(Duration::from_secs(2));
    let mut g = c.benchmark_group("digest_512MiB_blob");
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("store_reader_sha2", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| rt.block_on(ours(&store, &desc))).sum())
    });
    g.bench_function("sha256sum", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| sha256sum(&path)).sum())
    });
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&base);
}
