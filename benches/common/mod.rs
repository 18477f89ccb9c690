//! Helpers shared by the benches: a gzip layer built from this machine's files, CPU time
//! from `/proc`, and the tmpfs directory they work in.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;

/// `DIST_BENCH_DIR`, else `/dev/shm/<name>`: on tmpfs, so disk noise stays out.
pub(crate) fn bench_dir(name: &str) -> PathBuf {
    std::env::var_os("DIST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm").join(name))
}

/// `DIST_BENCH_LAYER_MB`, else `default` MB (2 MB when not run by `cargo bench`).
pub(crate) fn layer_mb(default: u64) -> u64 {
    std::env::var("DIST_BENCH_LAYER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking() { default } else { 2 })
}

/// Tars regular files, directories and symlinks from the source trees until `limit` bytes
/// of file data, gzip (default level) to `out`. Returns (uncompressed bytes, entries).
pub(crate) fn build_layer(out: &Path, limit: u64) -> (u64, usize) {
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

/// CPU seconds (user + system) used so far by this process and by its waited-for
/// children, from `/proc/self/stat` (clock ticks of 1/100 s, Linux's fixed USER_HZ).
pub(crate) fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields 14-17 of the file are 12-15 after the command name and state.
    ((f[11] + f[12]) / 100.0, (f[13] + f[14]) / 100.0)
}

/// True under `cargo bench` (criterion is passed `--bench`), false under `cargo test`.
pub(crate) fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// `len` pseudo-random bytes (xorshift): incompressible enough, deterministic, no extra
/// dependency.
pub(crate) fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Criterion for runs of seconds each: 10 samples, no warm-up to speak of (every run starts
/// cold anyway), `measure` of measurement, then the command line's options.
pub(crate) fn few_long_runs(measure: Duration) -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(measure)
        .configure_from_args()
}
