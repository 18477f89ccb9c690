//! Hostile blobs and silent servers from a scripted registry: blobs longer than declared,
//! endless, with absurd `Content-Length`s, stalled after a few KiB on every attempt, and
//! servers that accept and never answer. Every case holds `dist pull` to the bounds in
//! `support::assert_contained`; the stall cases pass `--timeout 2s`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use dist_test_support::{Body, HostileRegistry, OciLayout, Response, Served, parse_range};
use support::{Bounds, pull_contained};

/// A small, real image served honestly under `repo:v1`, then made hostile by the case.
fn image(reg: &HostileRegistry, repo: &str, files: &[(&str, &[u8])]) -> (Served, Vec<u8>) {
    let layer = OciLayout::tar_gz(files).unwrap();
    let bytes = layer.0.clone();
    (reg.image(repo, "v1", &[layer], None).unwrap(), bytes)
}

fn layer_path(repo: &str, served: &Served) -> String {
    format!("/v2/{repo}/blobs/{}", served.layer_digests[0])
}

fn bounds(served: &Served, budget: u64) -> Bounds {
    Bounds {
        legit: served.legit_bytes,
        slack: 1 << 20,
        budget: Duration::from_secs(budget),
    }
}

/// Bytes that do not compress (a fixed LCG), so a layer is as big on the wire as on disk.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect()
}

#[test]
fn a_blob_longer_than_declared_commits_only_verified_content() {
    let reg = HostileRegistry::start().unwrap();
    let (served, layer) = image(&reg, "long", &[("hello.txt", b"hello\n")]);
    let mut longer = layer.clone();
    longer.extend(vec![0x55; 1 << 20]);
    reg.route(&layer_path("long", &served), Response::ok(longer));
    let (dist, _, ok) = pull_contained(
        "blob 1 MiB longer than declared",
        &format!("{}/long:v1", reg.host()),
        &[],
        bounds(&served, 20),
    );
    if !ok {
        assert_eq!(dist.committed_snapshots(), 0);
    }
}

#[test]
fn an_endless_blob_is_refused() {
    let reg = HostileRegistry::start().unwrap();
    let (served, _) = image(&reg, "endless", &[("hello.txt", b"hello\n")]);
    reg.route(
        &layer_path("endless", &served),
        Response::with(200, Body::Endless { fill: 0 }),
    );
    let (dist, f, ok) = pull_contained(
        "endless blob",
        &format!("{}/endless:v1", reg.host()),
        &[],
        bounds(&served, 20),
    );
    assert!(!ok, "an endless blob was accepted:\n{}", f.stderr_text());
    assert_eq!(dist.committed_snapshots(), 0);
}

#[test]
fn absurd_content_lengths_on_a_blob_are_refused_or_verified() {
    support::each_case(
        [
            u64::MAX.to_string(),
            i64::MAX.to_string(),
            "-1".to_string(),
            "12abc".to_string(),
            "1".to_string(),
        ],
        |declared| {
            let reg = HostileRegistry::start().unwrap();
            let (served, layer) = image(&reg, "absurd", &[("hello.txt", b"hello\n")]);
            reg.route(
                &layer_path("absurd", &served),
                Response::with(
                    200,
                    Body::Declared {
                        bytes: layer.clone(),
                        declared: declared.clone(),
                    },
                ),
            );
            let (dist, _, ok) = pull_contained(
                &format!("blob with Content-Length {declared}"),
                &format!("{}/absurd:v1", reg.host()),
                &[],
                bounds(&served, 20),
            );
            if !ok {
                assert_eq!(dist.committed_snapshots(), 0);
            }
        },
    );
}

#[test]
fn a_blob_whose_wrong_bytes_match_its_size_is_not_committed() {
    let reg = HostileRegistry::start().unwrap();
    let (served, layer) = image(&reg, "wrong", &[("hello.txt", b"hello\n")]);
    reg.route(
        &layer_path("wrong", &served),
        Response::ok(vec![0x1f; layer.len()]),
    );
    let (dist, f, ok) = pull_contained(
        "blob with the right size and the wrong bytes",
        &format!("{}/wrong:v1", reg.host()),
        &[],
        bounds(&served, 20),
    );
    assert!(!ok, "wrong bytes were accepted:\n{}", f.stderr_text());
    assert_eq!(dist.committed_snapshots(), 0);
}

#[test]
fn a_blob_that_stalls_after_a_few_kib_on_every_attempt_fails_in_time() {
    let reg = HostileRegistry::start().unwrap();
    let big = noise(1 << 20);
    let (served, layer) = image(&reg, "stall", &[("noise.bin", &big)]);
    let len = layer.len();
    reg.route_fn(&layer_path("stall", &served), move |req| {
        // Each attempt makes progress: 4 KiB more from where the range starts, then silence.
        let (start, status) = match parse_range(req.header("range"), len) {
            Some((a, _)) => (a, 206),
            None => (0, 200),
        };
        let end = (start + 4096).min(len);
        let mut r = Response::with(
            status,
            Body::Stall {
                bytes: layer[start..end].to_vec(),
                declared: (len - start) as u64,
            },
        );
        if status == 206 {
            r = r.header("Content-Range", format!("bytes {start}-{}/{len}", len - 1));
        }
        r
    });
    let (dist, f, ok) = pull_contained(
        "blob stalling after 4 KiB per attempt",
        &format!("{}/stall:v1", reg.host()),
        &[],
        bounds(&served, 60),
    );
    assert!(!ok, "a stalling blob completed?\n{}", f.stderr_text());
    assert_eq!(dist.committed_snapshots(), 0);
    let err = f.stderr_text();
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains(&served.layer_digests[0]),
        "the error does not name the digest: {last}"
    );
    // The progress display says what is happening before the pull gives up.
    assert!(
        err.contains(": stalled (") && err.contains(": retrying ("),
        "the progress display shows no stall or retry:\n{err}"
    );
}

/// A registry whose `path` is answered by `response`, with an honest image otherwise.
fn silent_case(case: &str, hostile: impl Fn(&Served) -> (String, Response)) {
    let reg = HostileRegistry::start().unwrap();
    let (served, _) = image(&reg, "silent", &[("hello.txt", b"hello\n")]);
    let (path, response) = hostile(&served);
    reg.route(&path, response);
    let reached = |reg: &HostileRegistry| reg.requests().iter().any(|r| r.path() == path);
    let (dist, f, ok) = pull_contained(
        case,
        &format!("{}/silent:v1", reg.host()),
        &[],
        bounds(&served, 45),
    );
    assert!(!ok, "{case}: the pull succeeded:\n{}", f.stderr_text());
    assert!(reached(&reg), "{case}: never reached:\n{}", f.stderr_text());
    assert_eq!(dist.committed_snapshots(), 0);
    eprintln!(
        "{case}: {:?}, {}",
        f.elapsed,
        f.stderr_text().lines().last().unwrap_or_default()
    );
}

#[test]
fn a_registry_that_never_answers_the_manifest_request_fails_in_time() {
    silent_case("manifest: accept, never send headers", |_| {
        (
            "/v2/silent/manifests/v1".into(),
            Response::with(200, Body::Hang),
        )
    });
}

#[test]
fn a_manifest_body_that_stalls_fails_in_time() {
    silent_case("manifest: headers, then a stalled body", |s| {
        (
            format!("/v2/silent/manifests/{}", s.manifest_digest),
            Response::with(
                200,
                Body::Stall {
                    bytes: s.manifest[..10].to_vec(),
                    declared: s.manifest.len() as u64,
                },
            )
            .header("Content-Type", dist_test_support::OCI_MANIFEST)
            .header("Docker-Content-Digest", s.manifest_digest.clone()),
        )
    });
}

#[test]
fn a_blob_request_that_is_never_answered_fails_in_time() {
    silent_case("blob: accept, never send headers", |s| {
        (layer_path("silent", s), Response::with(200, Body::Hang))
    });
}

#[test]
fn a_config_that_stalls_before_its_first_byte_fails_in_time() {
    silent_case("config: headers, then no byte", |s| {
        (
            format!("/v2/silent/blobs/{}", s.config_digest),
            Response::with(
                200,
                Body::Stall {
                    bytes: Vec::new(),
                    declared: 100,
                },
            ),
        )
    });
}

#[test]
fn absurd_retry_after_values_neither_panic_nor_hang() {
    support::each_case_at_once(
        &[
            "18446744073709551615",
            "9223372036854775807",
            "-1",
            "1e300",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "soon",
        ],
        |value| {
            let reg = HostileRegistry::start().unwrap();
            let (served, layer) = image(&reg, "retry", &[("hello.txt", b"hello\n")]);
            let count = std::sync::atomic::AtomicUsize::new(0);
            let header = value.to_string();
            reg.route_fn(&layer_path("retry", &served), move |_| {
                if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    Response::status(503).header("Retry-After", header.clone())
                } else {
                    Response::ok(layer.clone())
                }
            });
            let (dist, f, ok) = pull_contained(
                &format!("503 with Retry-After {value:?}"),
                &format!("{}/retry:v1", reg.host()),
                &[],
                bounds(&served, 30),
            );
            eprintln!("Retry-After {value:?}: ok={ok} in {:?}", f.elapsed);
            if ok {
                assert_eq!(dist.committed_snapshots(), 1);
            }
        },
    );
}

#[test]
fn lying_content_ranges_on_a_resumed_blob_commit_only_verified_content() {
    support::each_case(
        [
            "bytes 0-{last}/{len}",
            "bytes 18446744073709551615-0/1",
            "bytes 0-18446744073709551615/18446744073709551615",
            "bytes {start}-{last}/18446744073709551615",
            "bytes */*",
            "pages 1-2/3",
        ],
        |template| {
            let reg = HostileRegistry::start().unwrap();
            let big = noise(200_000);
            let (served, layer) = image(&reg, "range", &[("noise.bin", &big)]);
            let len = layer.len();
            let count = std::sync::atomic::AtomicUsize::new(0);
            let lie = template.to_string();
            reg.route_fn(&layer_path("range", &served), move |req| {
                if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    // The first attempt breaks off after 50 KB, so the client resumes.
                    return Response::with(
                        200,
                        Body::Declared {
                            bytes: layer[..50_000].to_vec(),
                            declared: len.to_string(),
                        },
                    );
                }
                let start = parse_range(req.header("range"), len).map_or(0, |(a, _)| a);
                let range = lie
                    .replace("{start}", &start.to_string())
                    .replace("{last}", &(len - 1).to_string())
                    .replace("{len}", &len.to_string());
                Response::with(206, Body::Bytes(layer[start..].to_vec()))
                    .header("Content-Range", range)
            });
            let (dist, _, ok) = pull_contained(
                &format!("resumed with Content-Range {template:?}"),
                &format!("{}/range:v1", reg.host()),
                &[],
                bounds(&served, 30),
            );
            if ok {
                assert_eq!(dist.committed_snapshots(), 1);
            }
        },
    );
}
