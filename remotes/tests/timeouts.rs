//! Registries that stall: every wait is bounded by the header and stall timeouts, and a
//! descriptor's stalled attempts by its budget. Timeouts here are 1 s, so the bounds
//! asserted are a few seconds; they are generous upper bounds, never lower ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{collect, data, desc, fault_fetcher as fetcher, fault_options};
use dist_remotes::{
    DockerResolver, ErrorKind, FetchEvent, FetchObserver, Resolver, ResolverOptions,
};
use dist_test_support::{FaultServer, Reply};
use futures::TryStreamExt;
use oci_spec::image::MediaType;

use dist_images::media_types::OCI_MANIFEST;
/// The header and stall timeout of these tests.
const T: Duration = Duration::from_secs(1);
/// Slack for a busy machine on top of each computed bound.
const SLACK: Duration = Duration::from_secs(5);

fn options(host: &str) -> ResolverOptions {
    fault_options(host).with_request_timeout(T)
}

/// One line, and short whatever the server sent.
fn assert_one_bounded_line(err: &dyn std::error::Error) {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.len() < 1024, "{} bytes: {msg}", msg.len());
}

/// Records the events of one fetch.
#[derive(Default)]
struct Log(Mutex<Vec<FetchEvent>>);

impl FetchObserver for Log {
    fn on_event(&self, event: &FetchEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_fails_within_the_header_timeout() {
    let srv = FaultServer::start(|_, _| Reply::Hang).unwrap();
    let host = srv.host();
    // One stalled attempt allowed: the error comes after one header timeout.
    let opts = options(&host).with_max_stalls(1);
    let start = Instant::now();
    let err = DockerResolver::new(opts.clone())
        .resolve(&format!("{host}/repo:v1"))
        .await
        .unwrap_err();
    assert!(start.elapsed() < T + SLACK, "{:?}", start.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains(&host), "{err}");
    assert!(err.to_string().contains("no response headers"), "{err}");
    assert_one_bounded_line(&err);

    // A blob: the error names the host and the digest.
    let d = desc(b"x", MediaType::ImageLayerGzip);
    let f = fetcher(opts, &host).await;
    let start = Instant::now();
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(start.elapsed() < T + SLACK, "{:?}", start.elapsed());
    assert!(err.to_string().contains(&host), "{err}");
    assert!(err.to_string().contains(d.digest().as_ref()), "{err}");
    assert_one_bounded_line(&err);
}

#[tokio::test]
async fn header_timeouts_are_retried_only_within_the_stall_budget() {
    let srv = FaultServer::start(|_, _| Reply::Hang).unwrap();
    let host = srv.host();
    let d = desc(b"x", MediaType::ImageLayerGzip);
    let f = fetcher(options(&host).with_max_stalls(2), &host).await;
    let start = Instant::now();
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(start.elapsed() < 2 * T + SLACK, "{:?}", start.elapsed());
    assert!(err.to_string().contains("2 stalled attempts"), "{err}");
    // The retry policy allows four attempts; the budget stopped it at two.
    assert_eq!(srv.requests().len(), 2);
}

#[tokio::test]
async fn a_manifest_body_that_stalls_fails_within_the_stall_timeout() {
    let body = format!(r#"{{"mediaType":"{OCI_MANIFEST}","schemaVersion":2}}"#).into_bytes();
    let b = body.clone();
    // HEAD without a digest, so resolve GETs the body, which stalls half way.
    let srv = FaultServer::start(move |req, _| {
        if req.method == "HEAD" {
            return Reply::ok(b.clone()).header("Content-Type", OCI_MANIFEST);
        }
        Reply::Stall {
            status: 200,
            headers: vec![("Content-Type".into(), OCI_MANIFEST.into())],
            body: b[..10].to_vec(),
            announced: b.len(),
        }
    })
    .unwrap();
    let host = srv.host();
    let start = Instant::now();
    let err = DockerResolver::new(options(&host))
        .resolve(&format!("{host}/repo:v1"))
        .await
        .unwrap_err();
    assert!(start.elapsed() < T + SLACK, "{:?}", start.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("no data"), "{err}");
    assert_one_bounded_line(&err);

    // Fetching the manifest by descriptor: each attempt stalls; the budget ends it.
    let d = desc(&body, MediaType::ImageManifest);
    let f = fetcher(options(&host), &host).await;
    let start = Instant::now();
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(start.elapsed() < 3 * T + SLACK, "{:?}", start.elapsed());
    assert!(err.to_string().contains("3 stalled attempts"), "{err}");
    assert!(err.to_string().contains(d.digest().as_ref()), "{err}");
    assert_one_bounded_line(&err);
}

/// A registry whose token endpoint (on the same host) answers as `token` says.
fn bearer_server(token: impl Fn() -> Reply + Send + Sync + 'static) -> FaultServer {
    let realm = Arc::new(Mutex::new(String::new()));
    let r = realm.clone();
    let srv = FaultServer::start(move |req, _| {
        if req.path() == "/token" {
            return token();
        }
        let challenge = format!(r#"Bearer realm="{}",service="svc""#, r.lock().unwrap());
        Reply::status(401).header("WWW-Authenticate", challenge)
    })
    .unwrap();
    *realm.lock().unwrap() = format!("http://{}/token", srv.host());
    srv
}

#[tokio::test]
async fn a_token_endpoint_that_stalls_fails_instead_of_hanging() {
    let stalls = bearer_server(|| Reply::Stall {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"token":"#.to_vec(),
        announced: 100,
    });
    let silent = bearer_server(|| Reply::Hang);
    for srv in [stalls, silent] {
        let host = srv.host();
        let start = Instant::now();
        let err = DockerResolver::new(options(&host))
            .resolve(&format!("{host}/repo:v1"))
            .await
            .unwrap_err();
        assert!(start.elapsed() < T + SLACK, "{:?}", start.elapsed());
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("token server"), "{err}");
        assert_one_bounded_line(&err);
    }
}

#[tokio::test]
async fn a_blob_that_stalls_after_a_few_kib_on_every_attempt_fails_within_the_budget() {
    let blob = data(100_000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    // Every attempt: the requested range's first 4 KiB, then silence.
    let srv = FaultServer::start(move |req, _| {
        let (status, from) = match dist_test_support::parse_range(req.header("range"), b.len()) {
            Some((a, _)) => (206, a),
            None => (200, 0),
        };
        let mut headers = vec![];
        if status == 206 {
            headers.push((
                "Content-Range".into(),
                format!("bytes {from}-{}/{}", b.len() - 1, b.len()),
            ));
        }
        Reply::Stall {
            status,
            headers,
            body: b[from..(from + 4096).min(b.len())].to_vec(),
            announced: b.len() - from,
        }
    })
    .unwrap();
    let host = srv.host();
    let f = fetcher(options(&host), &host).await;
    let log = Arc::new(Log::default());
    let start = Instant::now();
    let res: Result<Vec<bytes::Bytes>, _> = f
        .fetch_at_observed(&d, 0, log.clone())
        .await
        .unwrap()
        .try_collect()
        .await;
    let err = res.unwrap_err();
    // Three stalled attempts of at most header + stall timeout each.
    assert!(start.elapsed() < 3 * 2 * T + SLACK, "{:?}", start.elapsed());
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&host), "{msg}");
    assert!(msg.contains(d.digest().as_ref()), "{msg}");
    assert!(msg.contains("gave up after 3 stalled attempts"), "{msg}");
    assert_one_bounded_line(&err);
    // Each attempt made progress, yet only three were made.
    assert_eq!(srv.requests().len(), 3);

    let events = log.0.lock().unwrap().clone();
    let stalled: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            FetchEvent::Stalled { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect();
    assert_eq!(stalled, [4096, 8192, 12288], "{events:?}");
    let retries = events
        .iter()
        .filter(|e| matches!(e, FetchEvent::Retrying { .. }))
        .count();
    assert_eq!(retries, 2, "{events:?}");
}

#[tokio::test]
async fn parallel_chunks_share_one_stall_budget() {
    let blob = data(100_000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    let srv = FaultServer::start(move |req, _| {
        let (a, z) = dist_test_support::parse_range(req.header("range"), b.len()).unwrap();
        Reply::Stall {
            status: 206,
            headers: vec![("Content-Range".into(), format!("bytes {a}-{z}/{}", b.len()))],
            body: b[a..a + 100].to_vec(),
            announced: z - a + 1,
        }
    })
    .unwrap();
    let host = srv.host();
    let opts = options(&host).with_parallel(Some(dist_remotes::ParallelFetch::new(1, 10_000, 4)));
    let f = fetcher(opts, &host).await;
    let start = Instant::now();
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(start.elapsed() < 3 * 2 * T + SLACK, "{:?}", start.elapsed());
    assert!(err.to_string().contains("stalled attempts"), "{err}");
    // Four chunks in flight stall together; nothing like 10 chunks x 3 attempts.
    assert!(
        srv.requests().len() <= 8,
        "{} requests",
        srv.requests().len()
    );
}

#[test]
fn the_default_budget_fails_a_stalling_registry_within_three_minutes() {
    let o = ResolverOptions::default();
    assert_eq!(o.header_timeout, Duration::from_secs(30));
    assert_eq!(o.stall_timeout, Duration::from_secs(30));
    // The issue's case (headers come, a few KiB, then silence) costs one stall timeout per
    // attempt; even a server that also holds its headers to just under the header timeout
    // costs one of each.
    assert!(o.stall_timeout * o.max_stalls <= Duration::from_secs(90));
    assert!((o.header_timeout + o.stall_timeout) * o.max_stalls <= Duration::from_secs(180));
}

#[tokio::test]
async fn failures_without_a_byte_stop_after_max_elapsed_across_reopenings() {
    let blob = data(10_000);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let b = blob.clone();
    // Some bytes, a cut, then 503 for ever: each reopening's retries would restart the
    // clock if it were per request.
    let srv = FaultServer::start(move |_, i| {
        if i == 0 {
            Reply::Cut {
                status: 200,
                headers: vec![],
                body: b[..1000].to_vec(),
                announced: b.len(),
            }
        } else {
            Reply::status(503)
        }
    })
    .unwrap();
    let host = srv.host();
    let max_elapsed = Duration::from_secs(1);
    let opts = options(&host).with_max_resumes(1000).with_retry(
        dist_remotes::RetryPolicy::default()
            .with_max_attempts(1000)
            .with_delays(Duration::from_millis(10), Duration::from_millis(20))
            .with_max_elapsed(max_elapsed),
    );
    let f = fetcher(opts, &host).await;
    let start = Instant::now();
    let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
    assert!(
        start.elapsed() < max_elapsed + SLACK,
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("503"), "{err}");
    assert_one_bounded_line(&err);
}
