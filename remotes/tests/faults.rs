//! Behaviour under faults a real registry will not produce, via a scripted HTTP server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dist_remotes::{
    Capabilities, DockerResolver, ErrorKind, Fetcher, HostsConfig, RegistryHost, Resolver,
    ResolverOptions, RetryPolicy, Scheme, StaticCredentials,
};
use dist_test_support::{FaultServer, Reply, Request};
use futures::TryStreamExt;
use oci_spec::image::{Descriptor, MediaType};
use sha2::Digest as _;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn options(host: &str) -> ResolverOptions {
    ResolverOptions::default()
        .with_hosts(HostsConfig::new().with_plain_http(host))
        .with_retry(
            RetryPolicy::default()
                .with_max_attempts(4)
                .with_delays(Duration::from_millis(10), Duration::from_millis(50)),
        )
        .with_timeouts(Duration::from_secs(5), Duration::from_millis(300))
        .with_max_resumes(3)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn desc(bytes: &[u8], mt: MediaType) -> Descriptor {
    let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    Descriptor::new(
        mt,
        bytes.len() as u64,
        d.parse::<oci_spec::image::Digest>().unwrap(),
    )
}

async fn fetcher(opts: ResolverOptions, host: &str) -> Box<dyn Fetcher> {
    DockerResolver::new(opts)
        .fetcher(&format!("{host}/repo"))
        .await
        .unwrap()
}

async fn collect(f: &dyn Fetcher, d: &Descriptor, offset: u64) -> dist_remotes::Result<Vec<u8>> {
    let parts: Vec<Bytes> = f.fetch_at(d, offset).await?.try_collect().await?;
    Ok(parts.concat())
}

/// Serves `blob` under `/v2/repo/blobs/<digest>` honouring Range.
fn serve_blob(blob: Vec<u8>) -> impl Fn(&Request, usize) -> Reply + Send + Sync + 'static {
    move |req, _| Reply::ranged(req, &blob)
}

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
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
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
    let f = fetcher(options(&srv.host()), &srv.host()).await;
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
    assert_eq!(srv.requests()[0].header("range"), Some("bytes=1000-"));
}

#[tokio::test]
async fn a_redirect_to_another_host_does_not_carry_authorization() {
    let blob = data(4000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let storage = FaultServer::start(serve_blob(blob.clone())).unwrap();
    let target = format!("http://{}/storage/blob", storage.host());
    let registry = FaultServer::start(move |req, _| match req.header("authorization") {
        None => Reply::status(401).header("WWW-Authenticate", r#"Basic realm="test""#),
        Some(_) => Reply::status(307).header("Location", target.clone()),
    })
    .unwrap();
    let host = registry.host();
    let opts = options(&host).with_credentials(Arc::new(
        StaticCredentials::new().with_basic(&host, "user", "secret"),
    ));
    let f = fetcher(opts, &host).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    let reg_reqs = registry.requests();
    assert!(reg_reqs.last().unwrap().header("authorization").is_some());
    let st_reqs = storage.requests();
    assert!(!st_reqs.is_empty());
    for r in st_reqs {
        assert_eq!(r.header("authorization"), None, "leaked to {}", r.target);
    }
}

fn manifest_server(
    body: Vec<u8>,
    head_digest: Option<String>,
    get_digest: Option<String>,
) -> FaultServer {
    FaultServer::start(move |req, _| {
        let digest = if req.method == "HEAD" {
            &head_digest
        } else {
            &get_digest
        };
        let mut r = Reply::ok(body.clone()).header("Content-Type", OCI_MANIFEST);
        if let Some(d) = digest {
            r = r.header("Docker-Content-Digest", d.clone());
        }
        r
    })
    .unwrap()
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

fn mirror_options(mirror: &str, origin: &str) -> ResolverOptions {
    let hosts = HostsConfig::new().with_hosts(
        origin,
        vec![
            RegistryHost::new(mirror)
                .with_scheme(Scheme::Http)
                .with_capabilities(Capabilities::PULL),
            RegistryHost::new(origin).with_scheme(Scheme::Http),
        ],
    );
    options(origin).with_hosts(hosts)
}

#[tokio::test]
async fn a_failing_mirror_falls_through_to_the_origin_unless_turned_off() {
    let blob = data(2000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let mirror = FaultServer::start(|_, _| Reply::status(503)).unwrap();
    let origin = FaultServer::start(serve_blob(blob.clone())).unwrap();
    let opts = mirror_options(&mirror.host(), &origin.host());
    let f = fetcher(opts.clone(), &origin.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    assert_eq!(mirror.requests().len(), 1, "a mirror gets one attempt");
    assert_eq!(origin.requests().len(), 1);

    let f = fetcher(opts.with_mirror_fallback(false), &origin.host()).await;
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&mirror.host()), "{err}");
    assert_eq!(
        origin.requests().len(),
        1,
        "origin not tried without fallback"
    );
}

#[tokio::test]
async fn a_pull_only_mirror_is_not_asked_to_resolve_tags() {
    let body = format!(r#"{{"mediaType":"{OCI_MANIFEST}"}}"#).into_bytes();
    let digest = desc(&body, MediaType::ImageManifest).digest().to_string();
    let mirror = FaultServer::start(|_, _| Reply::status(500)).unwrap();
    let origin = manifest_server(body, Some(digest.clone()), Some(digest));
    let r = DockerResolver::new(mirror_options(&mirror.host(), &origin.host()));
    r.resolve(&format!("{}/repo:v1", origin.host()))
        .await
        .unwrap();
    assert!(mirror.requests().is_empty());
}

#[tokio::test]
async fn loopback_hosts_fall_back_to_plain_http_when_https_fails() {
    let blob = data(100);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let srv = FaultServer::start(serve_blob(blob.clone())).unwrap();
    // No plain-HTTP configuration: HTTPS is tried first and cannot handshake.
    let opts = options(&srv.host()).with_hosts(HostsConfig::new());
    let f = fetcher(opts, &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
}

#[tokio::test]
async fn bearer_tokens_are_fetched_from_the_challenge_and_cached_per_scope() {
    let blob = data(300);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let tokens = Arc::new(AtomicUsize::new(0));
    let t2 = tokens.clone();
    let auth = FaultServer::start(move |req, _| {
        let n = t2.fetch_add(1, Ordering::SeqCst);
        assert!(
            req.target.contains("scope=repository%3Arepo%3Apull"),
            "{}",
            req.target
        );
        assert!(req.target.contains("service=svc"), "{}", req.target);
        Reply::ok(format!(r#"{{"token":"tok{n}","expires_in":300}}"#))
    })
    .unwrap();
    let realm = format!("http://{}/token", auth.host());
    let b = blob.clone();
    let srv = FaultServer::start(move |req, _| match req.header("authorization") {
        Some("Bearer tok0") => Reply::ranged(req, &b),
        _ => Reply::status(401).header(
            "WWW-Authenticate",
            format!(r#"Bearer realm="{realm}",service="svc",scope="repository:repo:pull""#),
        ),
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    for _ in 0..3 {
        assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    }
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        1,
        "one token for three fetches"
    );
    assert_eq!(srv.requests().len(), 4, "one 401, then three authorized");
}

#[tokio::test]
async fn credentials_are_not_sent_to_a_plain_http_token_server_on_another_host() {
    let auth = FaultServer::start(|_, _| Reply::ok(r#"{"token":"anon"}"#)).unwrap();
    let realm = format!("http://{}/token", auth.host());
    let srv = FaultServer::start(move |req, _| match req.header("authorization") {
        Some("Bearer anon") => Reply::status(404),
        _ => Reply::status(401).header("WWW-Authenticate", format!(r#"Bearer realm="{realm}""#)),
    })
    .unwrap();
    let host = srv.host();
    let opts = options(&host).with_credentials(Arc::new(
        StaticCredentials::new().with_basic(&host, "user", "secret"),
    ));
    let err = DockerResolver::new(opts)
        .resolve(&format!("{host}/repo:v1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    for r in auth.requests() {
        assert_eq!(r.header("authorization"), None);
    }
}

#[tokio::test]
async fn an_expired_token_is_renewed() {
    let blob = data(100);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let tokens = Arc::new(AtomicUsize::new(0));
    let t2 = tokens.clone();
    let auth = FaultServer::start(move |_, _| {
        let n = t2.fetch_add(1, Ordering::SeqCst);
        Reply::ok(format!(r#"{{"token":"tok{n}","expires_in":1}}"#))
    })
    .unwrap();
    let realm = format!("http://{}/token", auth.host());
    let b = blob.clone();
    let srv = FaultServer::start(move |req, _| match req.header("authorization") {
        Some(t) if t.starts_with("Bearer tok") => Reply::ranged(req, &b),
        _ => Reply::status(401).header("WWW-Authenticate", format!(r#"Bearer realm="{realm}""#)),
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    let auths: Vec<_> = srv
        .requests()
        .into_iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(auths, ["Bearer tok0", "Bearer tok1"]);
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
