//! `dist_rootfs::apply` against `tar -xzf` on the same ~500 MB gzip layer, built from files
//! on this machine (`/usr/lib`, `/usr/share`) and extracted into fresh directories on tmpfs
//! (`/dev/shm`). Goal: ours at most 0.6x tar's time.
//!
//! `DIST_BENCH_LAYER_MB` sets the layer size (default 500); `DIST_BENCH_DIR` the tmpfs
//! directory (default `/dev/shm/dist-rootfs-bench`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{bench_dir, build_layer, cpu, layer_mb};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Throughput;

fn fresh(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Wall time and CPU seconds of one run.
type Run = (Duration, f64);

fn ours(blob: &Path, base: &Path) -> Run {
    let dir = fresh(base, "ours");
    let (c0, _) = cpu();
    let t = Instant::now();
    let f = File::open(blob).unwrap();
    dist_rootfs::apply(f, &dir, &dist_rootfs::ApplyOptions::default()).unwrap();
    let e = t.elapsed();
    let (c1, _) = cpu();
    std::fs::remove_dir_all(&dir).unwrap();
    (e, c1 - c0)
}

fn gnu_tar(blob: &Path, base: &Path) -> Run {
    let dir = fresh(base, "tar");
    let (_, c0) = cpu();
    let t = Instant::now();
    let st = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(blob)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    let e = t.elapsed();
    let (_, c1) = cpu();
    assert!(st.success(), "tar -xzf failed");
    std::fs::remove_dir_all(&dir).unwrap();
    (e, c1 - c0)
}

fn main() {
    let mb = layer_mb(500);
    let base = bench_dir("dist-rootfs-bench");
    std::fs::create_dir_all(&base).unwrap();
    let blob = base.join("layer.tar.gz");
    let t = Instant::now();
    let (size, entries) = build_layer(&blob, mb << 20);
    let gz = std::fs::metadata(&blob).unwrap().len();
    eprintln!(
        "layer: {entries} entries, {:.0} MB of file data, {:.0} MB gzipped, built in {:.1?}",
        size as f64 / 1e6,
        gz as f64 / 1e6,
        t.elapsed()
    );

    // Interleaved head-to-head runs give the ratio on the same machine state; the best
    // of each is the least disturbed by other load.
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(ours(&blob, &base));
        b.push(gnu_tar(&blob, &base));
    }
    let cpu_ratio = a.iter().map(|r| r.1).sum::<f64>() / b.iter().map(|r| r.1).sum::<f64>();
    let (mut a, mut b): (Vec<Duration>, Vec<Duration>) = (
        a.iter().map(|r| r.0).collect(),
        b.iter().map(|r| r.0).collect(),
    );
    a.sort();
    b.sort();
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    eprintln!(
        "wall best: dist_rootfs::apply {:.2?}, tar -xzf {:.2?}, ratio {:.2}; median: {:.2?} vs {:.2?}, ratio {:.2} (goal <= 0.60); CPU time ratio {:.2}",
        a[0],
        b[0],
        ratio(a[0], b[0]),
        a[2],
        b[2],
        ratio(a[2], b[2]),
        cpu_ratio
    );

    let mut c = common::few_long_runs(Duration::from_secs(1));
    let mut g = c.benchmark_group("apply_gzip_layer");
    g.throughput(Throughput::Bytes(size));
    g.bench_function("dist_rootfs_apply", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| ours(&blob, &base).0).sum())
    });
    g.bench_function("tar_xzf", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| gnu_tar(&blob, &base).0).sum())
    });
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&base);
}
