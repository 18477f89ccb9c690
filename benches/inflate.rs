//! Inflate alone: the gzip decoder `dist_rootfs::apply` uses (`dist_rootfs::decompress`,
//! ISA-L's igzip with the default `isal` feature) against flate2 over zlib-rs (the
//! pure-Rust fallback, always compiled in) and `gzip -dc` (plus `igzip -dc` and `pigz -dc`
//! when on PATH, for reference), on the same ~256 MB gzip layer built from this machine's
//! files, output discarded. Apply's time is mostly this stage, so it is the first number
//! to look at when apply gets slower.
//!
//! `DIST_BENCH_LAYER_MB` sets the layer's file data (default 256); `DIST_BENCH_DIR` the
//! directory (default `/dev/shm/dist-inflate-bench`); `DIST_BENCH_LAYER` a gzip layer to
//! use instead of building one (e.g. a blob of the e2e image). Run:
//! `cargo bench --bench inflate` (`--no-default-features --features rootfs,pure-rust` for
//! the fallback alone).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{bench_dir, build_layer, layer_mb};
use criterion::Throughput;

/// Reads `dec` to the end in 256 KiB reads, as `apply`'s inflate stage does.
fn drain(mut dec: impl Read) -> u64 {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        match dec.read(&mut buf).unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

/// The decoder `apply` uses, whichever the features compiled in.
fn ours(blob: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let (dec, _) = dist_rootfs::decompress(File::open(blob).unwrap()).unwrap();
    let total = drain(dec);
    (t.elapsed(), total)
}

/// flate2 over zlib-rs, multi-member, 256 KiB input buffer: the pure-Rust fallback.
fn zlib_rs(blob: &Path) -> (Duration, u64) {
    let t = Instant::now();
    let input = BufReader::with_capacity(256 << 10, File::open(blob).unwrap());
    let total = drain(flate2::bufread::MultiGzDecoder::new(input));
    (t.elapsed(), total)
}

/// `tool -dc blob` to /dev/null, or None when `tool` is not on PATH.
fn external(tool: &str, blob: &Path) -> Option<Duration> {
    let t = Instant::now();
    let out = std::process::Command::new(tool)
        .arg("-dc")
        .arg(blob)
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    assert!(out.success(), "{tool} -dc failed");
    Some(t.elapsed())
}

type Decoder = (String, Box<dyn Fn(&Path) -> Duration>);

fn main() {
    let base = bench_dir("dist-inflate-bench");
    std::fs::create_dir_all(&base).unwrap();
    let blob = match std::env::var_os("DIST_BENCH_LAYER") {
        Some(p) => PathBuf::from(p),
        None => {
            let blob = base.join("layer.tar.gz");
            build_layer(&blob, layer_mb(256) << 20);
            blob
        }
    };
    let gz = std::fs::metadata(&blob).unwrap().len();
    let (_, tar) = ours(&blob);
    assert_eq!(zlib_rs(&blob).1, tar, "the decoders disagree on the length");
    eprintln!(
        "layer: {:.0} MB gzip, {:.0} MB tar; dist-rootfs inflates gzip with {}",
        gz as f64 / 1e6,
        tar as f64 / 1e6,
        dist_rootfs::GZIP_INFLATE
    );

    let mut decoders: Vec<Decoder> = Vec::new();
    if dist_rootfs::GZIP_INFLATE != "zlib-rs" {
        decoders.push((
            format!("dist_rootfs_{}", dist_rootfs::GZIP_INFLATE),
            Box::new(|b| ours(b).0),
        ));
    }
    decoders.push(("flate2_zlib_rs".into(), Box::new(|b| zlib_rs(b).0)));
    for tool in ["gzip", "igzip", "pigz"] {
        if external(tool, &blob).is_some() {
            decoders.push((
                format!("{tool}_dc"),
                Box::new(move |b| external(tool, b).unwrap()),
            ));
        }
    }

    // Interleaved runs: the ratios on the same machine state.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); decoders.len()];
    for _ in 0..5 {
        for (t, (_, run)) in times.iter_mut().zip(&decoders) {
            t.push(run(&blob));
        }
    }
    for (t, (name, _)) in times.iter_mut().zip(&decoders) {
        t.sort();
        eprintln!(
            "median of 5: {name} {:.2?} ({:.0} MB/s of tar out)",
            t[2],
            tar as f64 / 1e6 / t[2].as_secs_f64()
        );
    }

    let mut c = common::few_long_runs(Duration::from_secs(1));
    let mut g = c.benchmark_group("inflate_gzip_layer");
    g.throughput(Throughput::Bytes(tar));
    for (name, run) in &decoders {
        g.bench_function(name.as_str(), |bch| {
            bch.iter_custom(|n| (0..n).map(|_| run(&blob)).sum())
        });
    }
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&base);
}
