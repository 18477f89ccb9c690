//! Behaviour under faults a real registry will not produce, via a scripted HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use common::{
    collect, data, desc, fault_fetcher as fetcher, fault_options as options, manifest_server,
    serve_blob,
};
use dist_remotes::{DockerResolver, ErrorKind, FetchOptions, Resolver};
use dist_test_support::{FaultServer, Reply};
use oci_spec::image::MediaType;

use dist_images::media_types::OCI_MANIFEST;

#[tokio::test]
async fn connection_cut_mid_blob_resumes_with_range_and_the_digest_is_right() {
    let blob = data(200_000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, i| {
        if i == 0 {
            Reply::Cut {
                status: 200,
                headers: vec![],
                body: b[..70_000].to_vec(),
                announced: b.len(),
            }
        } else {
            Reply::ranged(req, &b)
        }
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), None);
    let range = reqs[1].header("range").unwrap();
    assert!(range.starts_with("bytes="), "{range}");
    let start: usize = range[6..].split('-').next().unwrap().parse().unwrap();
    assert!(start > 0 && start <= 70_000, "{range}");
}

#[tokio::test]
async fn a_body_that_keeps_breaking_without_progress_fails_instead_of_looping() {
    let blob = data(10_000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let srv = FaultServer::start(move |_, _| Reply::Cut {
        status: 200,
        headers: vec![],
        body: Vec::new(),
        announced: 10_000,
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    // One first attempt plus three reopenings, nothing unbounded.
    assert_eq!(srv.requests().len(), 4);
}

#[tokio::test]
async fn too_many_requests_is_retried_after_retry_after() {
    let blob = data(1000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, i| {
        if i == 0 {
            Reply::status(429).header("Retry-After", "1")
        } else {
            Reply::ranged(req, &b)
        }
    })
    .unwrap();
    // Backoff steps are 10 ms, so only Retry-After explains a wait of a second.
    let opts = options(&srv.host()).with_retry(
        dist_remotes::RetryPolicy::default()
            .with_max_attempts(4)
            .with_delays(Duration::from_millis(10), Duration::from_secs(5)),
    );
    let f = fetcher(opts, &srv.host()).await;
    let start = std::time::Instant::now();
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(srv.requests().len(), 2);
}

#[tokio::test]
async fn service_unavailable_is_retried_then_succeeds() {
    let blob = data(1000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, i| {
        if i < 2 {
            Reply::status(503)
        } else {
            Reply::ranged(req, &b)
        }
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    assert_eq!(srv.requests().len(), 3);
}

#[tokio::test]
async fn persistent_server_errors_give_unavailable_after_a_bounded_number_of_attempts() {
    let d = desc(b"x", MediaType::ImageLayerGzip);
    let srv = FaultServer::start(|_, _| Reply::status(503)).unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&srv.host()), "{err}");
    assert_eq!(srv.requests().len(), 4);
}

#[tokio::test]
async fn a_wrong_byte_in_a_blob_is_a_digest_mismatch() {
    let blob = data(5000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let mut bad = blob.clone();
    bad[1234] ^= 0xff;
    let srv = FaultServer::start(serve_blob(bad)).unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("digest"), "{err}");
}

/// For a caller that checks the digest itself (the fetch handler's ingester does), the
/// stream skips the hash but still holds the bytes to the descriptor's size.
#[tokio::test]
async fn a_caller_that_checks_the_digest_gets_unhashed_bytes_held_to_the_size() {
    let blob = data(5000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let mut bad = blob.clone();
    bad[1234] ^= 0xff;
    let srv = FaultServer::start(serve_blob(bad.clone())).unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let unhashed = FetchOptions::default().caller_checks_digest();
    let parts: Vec<bytes::Bytes> = f
        .fetch_at_with(&d, 0, unhashed.clone())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        parts.concat(),
        bad,
        "the bytes as served, for the caller to check"
    );
    let err = f
        .fetch_at_with(&d, 0, FetchOptions::default())
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");

    // More bytes than the size: refused when announced, cut and failed when not.
    let mut longer = blob.clone();
    longer.extend_from_slice(b"and more");
    let srv = FaultServer::start(move |_, _| Reply::ok(longer.clone())).unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let err = match f.fetch_at_with(&d, 0, unhashed).await {
        Err(e) => e,
        Ok(stream) => {
            let got: Vec<_> = stream.collect().await;
            let passed: usize = got.iter().flatten().map(|c| c.len()).sum();
            assert!(passed <= blob.len(), "{passed} bytes passed on");
            got.into_iter()
                .find_map(Result::err)
                .expect("a body over the size must end in an error")
        }
    };
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn a_stalled_body_times_out_instead_of_hanging() {
    let blob = data(5000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |_, _| Reply::Stall {
        status: 200,
        headers: vec![],
        body: b[..100].to_vec(),
        announced: b.len(),
    })
    .unwrap();
    let f = fetcher(short_stall(&srv.host()), &srv.host()).await;
    let res = tokio::time::timeout(Duration::from_secs(60), collect(f.as_ref(), &d, 0)).await;
    let err = res.expect("the fetch must not hang").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("no data"), "{err}");
}

#[tokio::test]
async fn a_server_that_ignores_range_has_the_prefix_skipped() {
    let blob = data(3000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |_, _| Reply::ok(b.clone())).unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 1000).await.unwrap(), &blob[1000..]);
    let req = &srv.requests()[0];
    assert_eq!(req.header("range"), Some("bytes=1000-"));
    let accept = req.header("accept").unwrap();
    assert!(
        accept.starts_with("application/vnd.oci.image.layer.v1.tar+gzip"),
        "{accept}"
    );
}

#[tokio::test]
async fn an_oversized_manifest_is_refused() {
    let body = format!(
        r#"{{"mediaType":"{OCI_MANIFEST}","pad":"{}"}}"#,
        "x".repeat(5000)
    )
    .into_bytes();
    let srv = manifest_server(body.clone(), None, None);
    let host = srv.host();
    let opts = options(&host).with_max_manifest_size(1024);
    let r = DockerResolver::new(opts.clone());
    let err = r.resolve(&format!("{host}/repo:v1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("exceeds"), "{err}");

    // Fetching a manifest descriptor over the bound sends no request at all.
    let before = srv.requests().len();
    let f = fetcher(opts.clone(), &host).await;
    let d = desc(&body, MediaType::ImageManifest);
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert_eq!(srv.requests().len(), before);

    // A server sending more than the (small) descriptor says is cut off.
    let small = desc(b"{}", MediaType::ImageManifest);
    let err = collect(f.as_ref(), &small, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn a_docker_content_digest_that_disagrees_with_the_body_is_refused() {
    let body = format!(r#"{{"mediaType":"{OCI_MANIFEST}"}}"#).into_bytes();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    // HEAD gives no digest, so the resolver GETs and compares header and body.
    let srv = manifest_server(body.clone(), None, Some(wrong.clone()));
    let host = srv.host();
    let r = DockerResolver::new(options(&host));
    let err = r.resolve(&format!("{host}/repo:v1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("disagrees"), "{err}");

    // Fetching the manifest: the header disagrees with the descriptor.
    let f = fetcher(options(&host), &host).await;
    let d = desc(&body, MediaType::ImageManifest);
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn resolve_falls_back_to_get_when_head_has_no_digest() {
    let body = format!(r#"{{"mediaType":"{OCI_MANIFEST}","schemaVersion":2}}"#).into_bytes();
    let srv = manifest_server(body.clone(), None, None);
    let host = srv.host();
    let (_, d) = DockerResolver::new(options(&host))
        .resolve(&format!("{host}/repo:v1"))
        .await
        .unwrap();
    assert_eq!(d, desc(&body, MediaType::ImageManifest));
    let methods: Vec<String> = srv.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
    let accept = srv.requests()[0].header("accept").unwrap().to_string();
    for mt in [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
    ] {
        assert!(accept.contains(mt), "{accept}");
    }
}

#[tokio::test]
async fn a_digest_reference_is_checked_against_what_the_registry_serves() {
    let body = format!(r#"{{"mediaType":"{OCI_MANIFEST}"}}"#).into_bytes();
    let other = format!("sha256:{}", "cd".repeat(32));
    let srv = manifest_server(body, None, None);
    let host = srv.host();
    let err = DockerResolver::new(options(&host))
        .resolve(&format!("{host}/repo@{other}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn parallel_range_fetch_reassembles_a_blob_in_order() {
    let blob = data(100_000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, i| {
        // The third range request breaks once; its chunk is resumed on its own.
        if i == 2 {
            let (a, z) = dist_test_support::parse_range(req.header("range"), b.len()).unwrap();
            return Reply::Cut {
                status: 206,
                headers: vec![("Content-Range".into(), format!("bytes {a}-{z}/{}", b.len()))],
                body: b[a..a + 10].to_vec(),
                announced: z - a + 1,
            };
        }
        Reply::ranged(req, &b)
    })
    .unwrap();
    let opts = options(&srv.host())
        .with_parallel(Some(dist_remotes::ParallelFetch::new(50_000, 16_384, 3)));
    let f = fetcher(opts, &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    assert_eq!(
        collect(f.as_ref(), &d, 60_000).await.unwrap(),
        &blob[60_000..]
    );
    let ranged = srv
        .requests()
        .iter()
        .filter(|r| r.header("range").is_some())
        .count();
    assert!(ranged >= 7, "expected several range requests, saw {ranged}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_instead_of_hanging() {
    let d = desc(b"x", MediaType::ImageLayerGzip);
    let srv = FaultServer::start(|_, _| Reply::Hang).unwrap();
    let f = fetcher(short_stall(&srv.host()), &srv.host()).await;
    let res = tokio::time::timeout(Duration::from_secs(60), collect(f.as_ref(), &d, 0)).await;
    let err = res.expect("the fetch must not hang").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("no response"), "{err}");
}

/// The fault options with 300 ms header and stall bounds, for the tests that stall on purpose.
fn short_stall(host: &str) -> dist_remotes::ResolverOptions {
    options(host).with_request_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn a_server_that_cuts_every_connection_after_a_few_bytes_fails_instead_of_crawling() {
    let blob = data(200_000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, _| {
        let (status, from) = match dist_test_support::parse_range(req.header("range"), b.len()) {
            Some((a, _)) => (206, a),
            None => (200, 0),
        };
        let headers = if status == 206 {
            vec![(
                "Content-Range".into(),
                format!("bytes {from}-{}/{}", b.len() - 1, b.len()),
            )]
        } else {
            vec![]
        };
        Reply::Cut {
            status,
            headers,
            body: b[from..from + 100].to_vec(),
            announced: b.len() - from,
        }
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(d.digest().as_ref()), "{err}");
    // The first attempt and three reopenings, not 2,000 of 100 bytes each.
    assert_eq!(srv.requests().len(), 4);
}

/// The first error of type `T` in `err`'s `source()` chain.
fn find_source<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur = err.source();
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

#[tokio::test]
async fn a_refused_connection_keeps_reqwests_error_as_the_source() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let r = DockerResolver::new(options(&host));
    let err = r.resolve(&format!("{host}/a/b:v1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let source = find_source::<reqwest::Error>(&err).expect("reqwest error in the chain");
    assert!(source.is_connect(), "{source:?}");
    assert!(source.url().is_none(), "the URL is stripped: {source:?}");
}

#[tokio::test]
async fn an_unparsable_reference_keeps_the_reference_error_as_the_source() {
    let err = DockerResolver::new(options("example.com"))
        .resolve("example.com/UPPER:v1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let source = find_source::<dist_reference::Error>(&err).expect("reference error kept");
    assert_eq!(source.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn an_unsupported_digest_algorithm_in_a_reference_is_its_own_error() {
    let err = DockerResolver::new(options("example.com"))
        .resolve("example.com/a/b@md5:d41d8cd98f00b204e9800998ecf8427e")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, dist_remotes::Error::UnsupportedDigestAlgorithm { algorithm, .. } if algorithm == "md5"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}
