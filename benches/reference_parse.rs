//! Cost of parsing references: `Reference::parse`, `normalize` and `Spec::parse` on the
//! shapes a pull sees, plus rejection of invalid input.
//!
//! Run: `cargo bench --bench reference_parse`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dist_reference::{Reference, Spec, normalize};

const DIGEST: &str = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582";

fn inputs() -> Vec<(&'static str, String)> {
    vec![
        ("familiar", "redis".to_owned()),
        ("full_tag", "docker.io/library/redis:latest".to_owned()),
        (
            "port_tag_digest",
            format!("localhost:5000/team/project/app:v1.2.3@{DIGEST}"),
        ),
        ("ipv6", "[2001:db8::1]:5000/repo:tag".to_owned()),
        (
            "long_name",
            format!(
                "registry.example.com/{}app:tag",
                "component-name/".repeat(15)
            ),
        ),
    ]
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("Reference::parse");
    for (label, input) in inputs() {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(label, |b| b.iter(|| Reference::parse(black_box(&input))));
    }
    group.finish();
}

fn bench_normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    for input in ["redis", "user/app:v1", "docker.io/library/redis:latest"] {
        group.bench_function(input, |b| b.iter(|| normalize(black_box(input))));
    }
    group.finish();
}

fn bench_spec(c: &mut Criterion) {
    let input = format!("docker.io/library/redis:latest@{DIGEST}");
    c.bench_function("Spec::parse/tag_digest", |b| {
        b.iter(|| Spec::parse(black_box(&input)))
    });
}

fn bench_reject(c: &mut Criterion) {
    let mut group = c.benchmark_group("reject");
    let cases = [
        ("uppercase", "example.com/Some/Path:tag".to_owned()),
        ("bad_digest", "example.com/app@sha256:abc".to_owned()),
        ("double_slash", "example.com//app".to_owned()),
        ("long_garbage", "a".repeat(4096) + "$"),
    ];
    for (label, input) in cases {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(label, |b| b.iter(|| Reference::parse(black_box(&input))));
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_normalize,
    bench_spec,
    bench_reject
);
criterion_main!(benches);
