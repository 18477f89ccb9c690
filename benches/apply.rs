//! `dist_rootfs::apply` against `tar -xzf` on the same ~500 MB gzip layer, built from files
//! on this machine (`/usr/lib`, `/usr/share`) and extracted into fresh directories on tmpfs
//! (`/dev/shm`). Goal: ours at most 0.6x tar's time.
//!
//! A second group applies a layer of many small files (20,000 files of 0-6 KB in 300
//! directories, as a Python package tree holds): there the cost is per entry, not per
//! byte, and it is measured in files per second.
//!
//! `DIST_BENCH_LAYER_MB` sets the layer size (default 500); `DIST_BENCH_DIR` the tmpfs
//! directory (default `/dev/shm/dist-rootfs-bench`); `DIST_BENCH_SMALL_FILES_ONLY=1` runs
//! only the small-files group.
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

/// A gzip layer of `files` small files in 300 directories three and four levels deep, with
/// the usual metadata: modes, owners 0:0, distinct mtimes, a symlink per directory and a
/// few hardlinks. Returns (bytes of file data, entries).
fn small_files_layer(out: &Path, files: usize) -> (u64, usize) {
    let gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(File::create(out).unwrap()),
        flate2::Compression::default(),
    );
    let mut b = tar::Builder::new(gz);
    let data = common::pseudo_random(6000);
    let (mut total, mut entries, mut links) = (0u64, 0usize, 0usize);
    let mut add = |b: &mut tar::Builder<_>, name: &str, kind: tar::EntryType, mode, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000 + entries as u64);
        h.set_size(body.len() as u64);
        b.append_data(&mut h, name, body).unwrap();
        total += body.len() as u64;
        entries += 1;
    };
    let dir = tar::EntryType::Directory;
    for top in [
        "usr/",
        "usr/lib/",
        "usr/lib/python3/",
        "usr/lib/python3/dist-packages/",
    ] {
        add(&mut b, top, dir, 0o755, b"");
    }
    let dirs: Vec<String> = (0..60)
        .flat_map(|p| {
            let pkg = format!("usr/lib/python3/dist-packages/pkg{p:03}");
            std::iter::once(pkg.clone()).chain((0..4).map(move |s| format!("{pkg}/sub{s}")))
        })
        .collect();
    let per_dir = files / dirs.len();
    for d in &dirs {
        add(&mut b, &format!("{d}/"), dir, 0o755, b"");
        for i in 0..per_dir {
            let len = [0, 100, 300, 800, 1500, 3000, 6000][i % 7];
            let mode = if i % 17 == 0 { 0o755 } else { 0o644 };
            let name = format!("{d}/mod{i:03}.py");
            add(&mut b, &name, tar::EntryType::Regular, mode, &data[..len]);
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        b.append_link(&mut h, format!("{d}/link"), "mod000.py")
            .unwrap();
        links += 1;
    }
    for k in 0..50 {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        let target = format!("{}/mod001.py", dirs[k * 5]);
        b.append_link(&mut h, format!("usr/lib/hl{k}"), target)
            .unwrap();
        links += 1;
    }
    let mut w = b.into_inner().unwrap().finish().unwrap();
    std::io::Write::flush(&mut w).unwrap();
    (total, entries + links)
}

fn small_files(base: &Path) {
    let blob = base.join("small-files.tar.gz");
    let files = if common::benchmarking() { 20_000 } else { 600 };
    let (_, entries) = small_files_layer(&blob, files);
    eprintln!("small-files layer: {entries} entries");
    let mut c = common::few_long_runs(Duration::from_secs(1));
    let mut g = c.benchmark_group("apply_small_files");
    g.throughput(Throughput::Elements(entries as u64));
    g.bench_function("dist_rootfs_apply", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| ours(&blob, base).0).sum())
    });
    g.bench_function("tar_xzf", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| gnu_tar(&blob, base).0).sum())
    });
    g.finish();
    c.final_summary();
}

fn main() {
    let base = bench_dir("dist-rootfs-bench");
    std::fs::create_dir_all(&base).unwrap();
    small_files(&base);
    if std::env::var_os("DIST_BENCH_SMALL_FILES_ONLY").is_some() {
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    let mb = layer_mb(500);
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
