//! `dist_rootfs::apply` against `tar -xzf` on the same ~500 MB gzip layer, built from files
//! on this machine (`/usr/lib`, `/usr/share`) and extracted into fresh directories on tmpfs
//! (`/dev/shm`). Goal: ours at most 0.6x tar's time.
//!
//! `DIST_BENCH_LAYER_MB` sets the layer size (default 500); `DIST_BENCH_DIR` the tmpfs
//! directory (default `/dev/shm/dist-rootfs-bench`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};

fn bench_dir() -> PathBuf {
    std::env::var_os("DIST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm/dist-rootfs-bench"))
}

/// Tars regular files, directories and symlinks from the source trees until `limit` bytes
/// of file data, gzip (default level) to `out`. Returns (uncompressed bytes, entries).
fn build_layer(out: &Path, limit: u64) -> (u64, usize) {
    let gz = flate2::write::GzEncoder::new(
        BufWriter::with_capacity(1 << 20, File::create(out).unwrap()),
        flate2::Compression::default(),
    );
    let mut b = tar::Builder::new(gz);
    b.follow_symlinks(false);
    let (mut total, mut entries) = (0u64, 0usize);
    let mut work: Vec<PathBuf> = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/share")];
    'outer: while let Some(dir) = work.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        let rel = dir.strip_prefix("/").unwrap();
        b.append_dir(rel, &dir).unwrap();
        entries += 1;
        for p in names.into_iter().rev() {
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let name = p.strip_prefix("/").unwrap();
            if md.is_dir() {
                work.push(p);
            } else if (md.is_file() || md.file_type().is_symlink())
                && b.append_path_with_name(&p, name).is_ok()
            {
                total += md.len();
                entries += 1;
                if total >= limit {
                    break 'outer;
                }
            }
        }
    }
    let gz = b.into_inner().unwrap();
    let mut w = gz.finish().unwrap();
    w.flush().unwrap();
    (total, entries)
}

fn fresh(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// CPU seconds (user + system) used so far by this process and by its waited-for
/// children, from `/proc/self/stat` (clock ticks of 1/100 s, Linux's fixed USER_HZ).
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 of the file are 12-15 after the command name and state.
    ((f[11] + f[12]) / 100.0, (f[13] + f[14]) / 100.0)
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

/// True under `cargo bench` (criterion is passed `--bench`), false under `cargo test`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn main() {
    let mb: u64 = std::env::var("DIST_BENCH_LAYER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        // `cargo test --all-targets` runs benches once as a smoke test: keep that cheap.
        .unwrap_or(if benchmarking() { 500 } else { 2 });
    let base = bench_dir();
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

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
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
