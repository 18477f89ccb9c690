//! Inflate alone: the gzip decoder `dist_rootfs::apply` uses (flate2 over zlib-rs) against
//! `gzip -dc`, on the same ~256 MB gzip layer built from this machine's files, output
//! discarded. Apply's time is mostly this stage, so it is the first number to look at
//! when apply gets slower.
//!
//! `DIST_BENCH_LAYER_MB` sets the layer's file data (default 256); `DIST_BENCH_DIR` the
//! directory (default `/dev/shm/dist-inflate-bench`). Run: `cargo bench --bench inflate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{bench_dir, build_layer, layer_mb};
use criterion::Throughput;

/// Decodes `blob` as `apply`'s inflate stage does (multi-member gzip, 256 KiB reads).
fn ours(blob: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let input = BufReader::with_capacity(256 << 10, File::open(blob).unwrap());
    let mut dec = flate2::bufread::MultiGzDecoder::new(input);
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        match dec.read(&mut buf).unwrap() {
            0 => break,
            n => total += n as u64,
        }
    }
    (t.elapsed(), total)
}

fn gzip(blob: &Path) -> Duration {
    let t = Instant::now();
    let out = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(blob)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success(), "gzip -dc failed");
    t.elapsed()
}

fn main() {
    let base = bench_dir("dist-inflate-bench");
    std::fs::create_dir_all(&base).unwrap();
    let blob = base.join("layer.tar.gz");
    build_layer(&blob, layer_mb(256) << 20);
    let gz = std::fs::metadata(&blob).unwrap().len();
    let (_, tar) = ours(&blob);
    eprintln!(
        "layer: {:.0} MB gzip, {:.0} MB tar",
        gz as f64 / 1e6,
        tar as f64 / 1e6
    );

    // Interleaved runs: the ratio on the same machine state.
    let (mut a, mut b): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(ours(&blob).0);
        b.push(gzip(&blob));
    }
    a.sort();
    b.sort();
    eprintln!(
        "median: flate2/zlib-rs {:.2?}, gzip -dc {:.2?}, ratio {:.2} ({:.0} MB/s of tar out)",
        a[2],
        b[2],
        a[2].as_secs_f64() / b[2].as_secs_f64(),
        tar as f64 / 1e6 / a[2].as_secs_f64()
    );

    let mut c = common::few_long_runs(Duration::from_secs(1));
    let mut g = c.benchmark_group("inflate_gzip_layer");
    g.throughput(Throughput::Bytes(tar));
    g.bench_function("flate2_zlib_rs", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| ours(&blob).0).sum())
    });
    g.bench_function("gzip_dc", |bch| {
        bch.iter_custom(|n| (0..n).map(|_| gzip(&blob)).sum())
    });
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&base);
}
