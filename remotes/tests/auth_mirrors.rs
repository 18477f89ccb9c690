//! Auth, redirects and mirrors against scripted HTTP servers: tokens, credentials that must
//! not leak, fallback through mirrors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    collect, data, desc, fault_fetcher as fetcher, fault_options as options, manifest_server,
    serve_blob,
};
use dist_remotes::{
    Capabilities, DockerResolver, ErrorKind, HostsConfig, RegistryHost, Resolver, ResolverOptions,
    Scheme, StaticCredentials,
};
use dist_test_support::{FaultServer, Reply};
use oci_spec::image::MediaType;

use dist_images::media_types::OCI_MANIFEST;

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
async fn a_token_the_registry_stops_accepting_is_renewed() {
    let blob = data(100);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let tokens = Arc::new(AtomicUsize::new(0));
    let t2 = tokens.clone();
    let auth = FaultServer::start(move |_, _| {
        let n = t2.fetch_add(1, Ordering::SeqCst);
        Reply::ok(format!(r#"{{"token":"tok{n}","expires_in":300}}"#))
    })
    .unwrap();
    let realm = format!("http://{}/token", auth.host());
    let b = blob.clone();
    // tok0 expires (server side) once it has been used for one fetch.
    let srv = FaultServer::start(move |req, _| match req.header("authorization") {
        Some("Bearer tok0") if first_use() => Reply::ranged(req, &b),
        Some("Bearer tok1") => Reply::ranged(req, &b),
        _ => Reply::status(401).header("WWW-Authenticate", format!(r#"Bearer realm="{realm}""#)),
    })
    .unwrap();
    let f = fetcher(options(&srv.host()), &srv.host()).await;
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob);
    assert_eq!(tokens.load(Ordering::SeqCst), 2);
    let auths: Vec<_> = srv
        .requests()
        .into_iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(auths, ["Bearer tok0", "Bearer tok0", "Bearer tok1"]);
}

/// True the first time it is called in this process (one test uses it).
fn first_use() -> bool {
    static USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    !USED.swap(true, Ordering::SeqCst)
}

/// A token server answering `body` for every request, and a registry that accepts
/// `Bearer tok` only; returns both (the registry serves `blob`).
fn token_pair(body: &'static str, blob: Vec<u8>) -> (FaultServer, FaultServer) {
    let auth = FaultServer::start(move |_, _| Reply::ok(body)).unwrap();
    let realm = format!("http://{}/token", auth.host());
    let srv = FaultServer::start(move |req, _| match req.header("authorization") {
        Some("Bearer tok") => Reply::ranged(req, &blob),
        _ => Reply::status(401).header("WWW-Authenticate", format!(r#"Bearer realm="{realm}""#)),
    })
    .unwrap();
    (auth, srv)
}

#[tokio::test]
async fn absurd_token_lifetimes_are_clamped_not_a_panic() {
    let blob = data(100);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    for body in [
        r#"{"token":"tok","expires_in":18446744073709551615}"#,
        r#"{"token":"tok","expires_in":1e308}"#,
        r#"{"token":"tok","expires_in":-5,"issued_at":"0001-01-01T00:00:00Z"}"#,
        r#"{"token":"tok","expires_in":1,"issued_at":"9999-12-31T23:59:59Z"}"#,
        r#"{"token":"tok","expires_in":0}"#,
    ] {
        let (auth, srv) = token_pair(body, blob.clone());
        let f = fetcher(options(&srv.host()), &srv.host()).await;
        for _ in 0..2 {
            assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob, "{body}");
        }
        // Lifetimes under a minute count as a minute: one token for both fetches.
        assert_eq!(auth.requests().len(), 1, "{body}");
    }
}

#[tokio::test]
async fn garbage_token_responses_are_one_line_protocol_errors_that_quote_no_token() {
    let blob = data(100);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let huge: &'static str =
        Box::leak(format!("{{\"token\":\"secret{}", "x".repeat(100_000)).into_boxed_str());
    for body in [
        "<html>not json</html>",
        "[]",
        r#"{"token":"secret","expires_in":"soon"}"#,
        r#"{"token":42}"#,
        r#"{"expires_in":300}"#,
        r#"{"token":"sec ret"}"#,
        r#"{"token":"secret\nX-Injected: 1"}"#,
        huge,
    ] {
        let (_auth, srv) = token_pair(body, blob.clone());
        let f = fetcher(options(&srv.host()), &srv.host()).await;
        let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{body}: {err}");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(!msg.contains("secret"), "{msg}");
        assert!(msg.len() < 400, "{msg}");
        assert!(msg.contains(&srv.host()), "{msg}");
    }
}

#[tokio::test]
async fn garbage_challenges_are_protocol_errors_quoting_an_elided_snippet() {
    let blob = data(100);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    let long: &'static str =
        Box::leak(format!("Bearer realm=\"{}", "r".repeat(10_000)).into_boxed_str());
    for (challenge, kind) in [
        ("Bearer realm=\"unterminated", ErrorKind::Protocol),
        ("=====", ErrorKind::Protocol),
        (long, ErrorKind::Protocol),
        ("Bearer realm=\"file:///etc/passwd\"", ErrorKind::Protocol),
        ("Bearer realm=\"http://[::1\"", ErrorKind::Protocol),
        ("Bearer service=\"no realm\"", ErrorKind::Unauthorized),
        ("Negotiate abc==", ErrorKind::Unauthorized),
    ] {
        let srv = FaultServer::start(move |_, _| {
            Reply::status(401).header("WWW-Authenticate", challenge)
        })
        .unwrap();
        let f = fetcher(options(&srv.host()), &srv.host()).await;
        let err = collect(f.as_ref(), &d, 0).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{challenge:.40}: {err}");
        let msg = err.to_string();
        assert!(msg.len() < 600, "{msg}");
        assert!(msg.contains(&srv.host()), "{msg}");
    }
}

#[tokio::test]
async fn credentials_and_tokens_for_one_host_are_never_sent_to_another() {
    let blob = data(200);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    // `basic` wants Basic credentials; `bearer` wants a token from `auth`; `other` is
    // anonymous and records what it gets.
    let b = blob.clone();
    let basic = FaultServer::start(move |req, _| match req.header("authorization") {
        Some(_) => Reply::ranged(req, &b),
        None => Reply::status(401).header("WWW-Authenticate", r#"Basic realm="r""#),
    })
    .unwrap();
    let auth =
        FaultServer::start(|_, _| Reply::ok(r#"{"token":"tokA","expires_in":300}"#)).unwrap();
    let realm = format!("http://{}/token", auth.host());
    let b = blob.clone();
    let bearer = FaultServer::start(move |req, _| match req.header("authorization") {
        Some("Bearer tokA") => Reply::ranged(req, &b),
        _ => Reply::status(401).header("WWW-Authenticate", format!(r#"Bearer realm="{realm}""#)),
    })
    .unwrap();
    let other = FaultServer::start(serve_blob(blob.clone())).unwrap();
    let hosts = HostsConfig::new()
        .with_plain_http(basic.host())
        .with_plain_http(bearer.host())
        .with_plain_http(other.host());
    let opts = options(&basic.host())
        .with_hosts(hosts)
        .with_credentials(Arc::new(
            StaticCredentials::new()
                .with_basic(basic.host(), "user", "secret")
                .with_basic(bearer.host(), "user2", "secret2"),
        ));
    let r = DockerResolver::new(opts);
    for host in [basic.host(), bearer.host(), other.host(), basic.host()] {
        let f = r.fetcher(&format!("{host}/repo")).await.unwrap();
        assert_eq!(collect(f.as_ref(), &d, 0).await.unwrap(), blob, "{host}");
    }
    for req in other.requests() {
        assert_eq!(req.header("authorization"), None, "leaked to another host");
    }
    for req in basic.requests() {
        let a = req.header("authorization").unwrap_or_default();
        assert!(!a.contains("tokA"), "a token of another host: {a}");
    }
    for req in bearer.requests() {
        let a = req.header("authorization").unwrap_or_default();
        assert!(
            !a.starts_with("Basic"),
            "credentials went to the registry: {a}"
        );
    }
}

#[tokio::test]
async fn a_token_server_redirect_is_not_followed_with_credentials() {
    let elsewhere = FaultServer::start(|_, _| Reply::ok(r#"{"token":"stolen"}"#)).unwrap();
    let target = format!("http://{}/token", elsewhere.host());
    let auth =
        FaultServer::start(move |_, _| Reply::status(307).header("Location", target.clone()))
            .unwrap();
    let realm = format!("http://{}/token", auth.host());
    let srv = FaultServer::start(move |_, _| {
        Reply::status(401).header("WWW-Authenticate", format!(r#"Bearer realm="{realm}""#))
    })
    .unwrap();
    let host = srv.host();
    let hosts = HostsConfig::new()
        .with_plain_http(&host)
        .with_plain_http(auth.host());
    let opts = options(&host).with_hosts(hosts).with_credentials(Arc::new(
        StaticCredentials::new().with_basic(&host, "user", "secret"),
    ));
    let err = DockerResolver::new(opts)
        .resolve(&format!("{host}/repo:v1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    assert!(
        auth.requests()
            .iter()
            .all(|r| r.header("authorization").is_some()),
        "the named token server gets the credentials"
    );
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn a_token_server_error_body_is_quoted_on_one_line_and_elided() {
    let blob = data(10);
    let d = desc(&blob, MediaType::ImageLayerGzip);
    for status in [400u16, 403] {
        let body = "no\r\nway ".repeat(10_000);
        let auth = FaultServer::start(move |_, _| Reply::Full {
            status,
            headers: Vec::new(),
            body: body.clone().into_bytes(),
        })
        .unwrap();
        let realm = format!("http://{}/token", auth.host());
        let srv = FaultServer::start(move |_, _| {
            Reply::status(401).header("WWW-Authenticate", format!(r#"Bearer realm="{realm}""#))
        })
        .unwrap();
        let f = fetcher(options(&srv.host()), &srv.host()).await;
        let msg = collect(f.as_ref(), &d, 0).await.unwrap_err().to_string();
        assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg}");
        assert!(msg.len() < 600, "{msg}");
        assert!(msg.contains("no  way"), "{msg}");
    }
}
