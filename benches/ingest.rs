//! Ingest of a 256 MiB blob through `dist_content::LocalStore`'s `Writer`, against hashing
//! the same bytes with `sha2` alone (through `dist_content::Digester`). Goal: ingest
//! throughput at least 90% of hash-only.
//!
//! The blob is one random 1 MiB chunk fed 256 times, so memory stays flat and both sides
//! hash exactly the same stream. Three measurements:
//! - `hash_only`: `Digester::update` (the writer's own hasher, over `sha2`) over the stream;
//! - `writer_stream`: write the stream into a `Writer` and flush (hashing plus writing to
//!   the page cache: the streaming path a pull exercises);
//! - `writer_commit`: the same plus `commit` (fsync of 256 MiB, verify, atomic rename):
//!   bounded by the disk, reported for completeness.
//!
//! `DIST_BENCH_DIR` chooses where the store lives (default: the system temp directory).
//! Run with `cargo bench --bench ingest`.
//!
//! On a shared machine the wall-clock ratio mostly measures whether spare cores were free
//! for the writer's helper threads. So after criterion the bench also prints CPU time per
//! 256 MiB (from `/proc/.../schedstat`): the caller's thread alone (the `Writer` only copies
//! bytes into chunk buffers there) and the whole process (the copy, the hashing and the
//! kernel's page-cache writes, spread over blocking threads), next to hash-only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::pseudo_random;

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dist_content::{Digester, IngestManager, Ingester, LocalStore, Manager, WriterOpts};
use tokio::io::AsyncWriteExt;

const CHUNK: usize = 1 << 20;
/// 256 MiB under `cargo bench`; 4 MiB when `cargo test --all-targets` smoke-runs benches.
fn chunks() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        256
    } else {
        4
    }
}

fn total() -> u64 {
    (CHUNK * chunks()) as u64
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("DIST_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn ingest(c: &mut Criterion) {
    let data = pseudo_random(CHUNK);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = bench_dir();
    let store = LocalStore::open(dir.path()).unwrap();
    let expected = {
        let mut h = Digester::sha256();
        for _ in 0..chunks() {
            h.update(&data);
        }
        h.finish()
    };

    let mut group = c.benchmark_group("ingest_256MiB");
    group.throughput(Throughput::Bytes(total()));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("hash_only", |b| {
        b.iter(|| {
            let mut h = Digester::sha256();
            for _ in 0..chunks() {
                h.update(&data);
            }
            h.finish()
        })
    });

    let mut n = 0u64;
    group.bench_function("writer_stream", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let reference = format!("bench-stream-{n}");
                rt.block_on(async {
                    let mut w = store.writer(WriterOpts::new(&reference)).await.unwrap();
                    let start = Instant::now();
                    for _ in 0..chunks() {
                        w.write_all(&data).await.unwrap();
                    }
                    w.flush().await.unwrap();
                    assert_eq!(w.digest().await.unwrap(), expected);
                    spent += start.elapsed();
                    drop(w);
                    store.abort(&reference).await.unwrap();
                });
            }
            spent
        })
    });

    group.bench_function("writer_commit", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let reference = format!("bench-commit-{n}");
                rt.block_on(async {
                    let mut w = store.writer(WriterOpts::new(&reference)).await.unwrap();
                    let start = Instant::now();
                    for _ in 0..chunks() {
                        w.write_all(&data).await.unwrap();
                    }
                    w.commit(total(), Some(&expected)).await.unwrap();
                    spent += start.elapsed();
                    store.delete(&expected).await.unwrap();
                });
            }
            spent
        })
    });
    group.finish();

    // CPU time, robust against other load on the machine.
    let rounds = 5;
    let (mut hash_ns, mut caller_ns, mut process_ns) = (0u64, 0u64, 0u64);
    for _ in 0..rounds {
        let t0 = thread_cpu_ns();
        let mut h = Digester::sha256();
        for _ in 0..chunks() {
            h.update(&data);
        }
        std::hint::black_box(h.finish());
        hash_ns += thread_cpu_ns() - t0;
    }
    for i in 0..rounds {
        let reference = format!("bench-cpu-{i}");
        rt.block_on(async {
            let mut w = store.writer(WriterOpts::new(&reference)).await.unwrap();
            let (t0, p0) = (thread_cpu_ns(), process_cpu_ns());
            for _ in 0..chunks() {
                w.write_all(&data).await.unwrap();
            }
            w.flush().await.unwrap();
            caller_ns += thread_cpu_ns() - t0;
            process_ns += process_cpu_ns() - p0;
            drop(w);
            store.abort(&reference).await.unwrap();
        });
    }
    let ms = |ns: u64| ns as f64 / rounds as f64 / 1e6;
    println!(
        "CPU per 256 MiB: hash_only {:.1} ms; writer_stream caller thread {:.1} ms, \
         whole process {:.1} ms",
        ms(hash_ns),
        ms(caller_ns),
        ms(process_ns)
    );
}

/// Nanoseconds a task has spent on a CPU, from its `schedstat` file.
fn schedstat_ns(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Nanoseconds this thread has spent on a CPU.
fn thread_cpu_ns() -> u64 {
    schedstat_ns(std::path::Path::new("/proc/thread-self/schedstat"))
}

/// Nanoseconds all live threads of this process have spent on a CPU.
fn process_cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| t.ok())
        .map(|t| schedstat_ns(&t.path().join("schedstat")))
        .sum()
}

criterion_group!(benches, ingest);
criterion_main!(benches);
