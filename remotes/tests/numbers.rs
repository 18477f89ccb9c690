//! Numbers from the network that overflow, lie or are garbage: `Retry-After`,
//! `Content-Range`, `Content-Length` and descriptor sizes. None may panic (tests build with
//! overflow checks), wait for ever, or allocate in proportion to a claimed size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{collect, data, desc, fault_fetcher as fetcher, fault_options as options};
use dist_remotes::{DockerResolver, ErrorKind, ParallelFetch, Resolver, RetryPolicy};
use dist_test_support::{FaultServer, Reply};
use oci_spec::image::{Descriptor, MediaType};

use dist_images::media_types::OCI_MANIFEST;

fn assert_one_bounded_line(err: &dyn std::error::Error) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.len() < 1024, "{} bytes: {msg}", msg.len());
}

#[tokio::test]
async fn huge_or_garbage_retry_after_is_clamped_and_the_request_retried() {
    for value in [
        "18446744073709551615",
        "99999999999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "garbage",
        "-5",
    ] {
        let blob = data(1000);
        let d = desc(&blob, MediaType::ImageLayerGzip);
        let b = blob.clone();
        let srv = FaultServer::start(move |req, i| {
            if i == 0 {
                Reply::status(503).header("Retry-After", value)
            } else {
                Reply::ranged(req, &b)
            }
        })
        .unwrap();
        // A single wait is capped at 50 ms, whatever the server asks.
        let opts = options(&srv.host()).with_retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_delays(Duration::from_millis(10), Duration::from_millis(50)),
        );
        let f = fetcher(opts, &srv.host()).await;
        let start = Instant::now();
        assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob, "{value}");
        assert!(start.elapsed() < Duration::from_secs(10), "{value}");
        assert_eq!(srv.requests().len(), 2, "{value}");
    }
}

#[tokio::test]
async fn garbage_or_overflowing_content_range_is_a_protocol_error() {
    let blob = data(3000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let long = format!("bytes 1000-{}", "9".repeat(100_000));
    for value in [
        None,
        Some("garbage".to_string()),
        Some("bytes 1000-18446744073709551616/*".to_string()),
        Some("bytes 1000-2999/99999999999999999999999".to_string()),
        Some("bytes 1000-999/3000".to_string()),
        Some("bytes 1000-2999/18446744073709551615".to_string()),
        Some("bytes 0-2999/3000".to_string()),
        Some(long.clone()),
    ] {
        let b = blob.clone();
        let v = value.clone();
        let srv = FaultServer::start(move |_, _| {
            let mut headers = Vec::new();
            if let Some(v) = &v {
                headers.push(("Content-Range".to_string(), v.clone()));
            }
            Reply::Full {
                status: 206,
                headers,
                body: b[1000..].to_vec(),
            }
        })
        .unwrap();
        let f = fetcher(options(&srv.host()), &srv.host()).await;
        let err = collect(f.as_ref(), &d, 1000).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{value:?}: {err}");
        assert!(err.to_string().contains(&srv.host()), "{err}");
        assert_one_bounded_line(&err);
    }
}

#[tokio::test]
async fn an_absurd_descriptor_size_is_refused_before_any_request() {
    let srv = FaultServer::start(|_, _| Reply::status(500)).unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let digest = desc(b"x", MediaType::ImageLayerGzip).digest().clone();
    for size in [u64::MAX, i64::MAX as u64 + 1] {
        let d = Descriptor::new(MediaType::ImageLayerGzip, size, digest.clone());
        let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
        assert!(err.to_string().contains("absurd"), "{err}");
        let err = collect(f.as_ref(), &d, u64::MAX).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    }
    assert!(srv.requests().is_empty());
}

#[tokio::test]
async fn a_huge_declared_size_allocates_nothing_in_proportion() {
    // 2^62 bytes in 1-byte chunks would be 2^62 ranges if they were planned up front.
    let blob = data(1000);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, _| Reply::ranged(req, &b)).unwrap();
    let huge = Descriptor::new(
        MediaType::ImageLayerGzip,
        1 << 62,
        desc(&blob, MediaType::ImageLayerGzip).digest().clone(),
    );
    let opts = options(&srv.host()).with_parallel(Some(ParallelFetch::new(1, 1, 4)));
    let f = fetcher(opts, &srv.host()).await;
    let err = collect(f.as_ref(), &huge, 0).await.unwrap_err();
    // The registry's Content-Range total disagrees with the descriptor.
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("not the size"), "{err}");
    assert!(srv.requests().len() <= 8, "{}", srv.requests().len());

    // Without parallel fetch: the server's whole blob is short of the claim.
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let err = collect(f.as_ref(), &huge, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_one_bounded_line(&err);
}

#[tokio::test]
async fn a_blob_longer_than_declared_is_cut_and_is_an_error() {
    let blob = data(3000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let mut longer = blob.clone();
    longer.extend_from_slice(&data(50_000));
    // Whole answer announcing more than the size: refused before the body is read.
    let l = longer.clone();
    let srv = FaultServer::start(move |_, _| Reply::ok(l.clone())).unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("more than"), "{err}");

    // A 206 whose body runs past its Content-Range: no byte past the size is passed on.
    let l = longer.clone();
    let srv = FaultServer::start(move |_, _| Reply::Full {
        status: 206,
        headers: vec![("Content-Range".into(), "bytes 1000-2999/3000".into())],
        body: l[1000..].to_vec(),
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let mut stream = f.fetch_at(&d, 1000).await.unwrap();
    let mut got = 0usize;
    let mut failed = None;
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        match chunk {
            Ok(c) => got += c.len(),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    assert!(got <= 2000, "{got} bytes passed on");
    let err = failed.expect("an overlong body must end in an error");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn endless_bodies_end_at_the_declared_size() {
    let blob = data(3000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let mut endless = blob.clone();
    endless.extend_from_slice(&data(200_000));
    // Announces a length it never finishes sending, far beyond the size.
    let srv = FaultServer::start(move |_, _| Reply::Stall {
        status: 200,
        headers: vec![],
        body: endless.clone(),
        announced: usize::MAX / 2,
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let start = Instant::now();
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn absurd_content_lengths_on_manifests_are_refused_or_ignored() {
    let body = format!(r#"{{"mediaType":"{OCI_MANIFEST}","schemaVersion":2}}"#).into_bytes();
    let digest = desc(&body, MediaType::ImageManifest).digest().to_string();
    for length in ["18446744073709551615", "99999999999999999999999", "-1"] {
        let b = body.clone();
        let dg = digest.clone();
        let srv = FaultServer::start(move |req, _| {
            if req.method == "HEAD" {
                return Reply::status(200)
                    .header("Content-Length", length)
                    .header("Content-Type", OCI_MANIFEST)
                    .header("Docker-Content-Digest", dg.clone());
            }
            Reply::ok(b.clone()).header("Content-Type", OCI_MANIFEST)
        })
        .unwrap();
        let host = srv.host();
        let res = DockerResolver::new(options(&host))
            .resolve(&format!("{host}/repo:v1"))
            .await;
        match res {
            // Over the manifest bound: refused.
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{length}: {e}");
                assert_one_bounded_line(&e);
            }
            // Unparseable: the body is read (and bounded) instead.
            Ok((_, d)) => assert_eq!(d.size(), body.len() as u64, "{length}"),
        }
    }
}

#[tokio::test]
async fn a_huge_header_value_is_quoted_elided() {
    let body = format!(r#"{{"mediaType":"{OCI_MANIFEST}"}}"#).into_bytes();
    let bad = format!("sha256:{}", "z".repeat(6000));
    let srv = FaultServer::start(move |_, _| {
        Reply::ok(body.clone())
            .header("Content-Type", OCI_MANIFEST)
            .header("Docker-Content-Digest", bad.clone())
    })
    .unwrap();
    let host = srv.host();
    let err = DockerResolver::new(options(&host))
        .resolve(&format!("{host}/repo:v1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(err.to_string().contains("bytes)"), "{err}");
    assert_one_bounded_line(&err);
}
