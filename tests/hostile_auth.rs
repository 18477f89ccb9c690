//! Hostile redirects, token responses and `WWW-Authenticate` challenges from a scripted
//! registry. Every case holds `dist pull` to the bounds in `support::assert_contained`,
//! and the cases with credentials prove that no credential reaches another host: every
//! request each server saw is recorded with its headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use dist_test_support::{Body, HostileRegistry, OciLayout, Request, Response, Served};
use support::{Bounds, base64_encode, docker_config, pull_contained};

const USER: &str = "hostile-user";
const SECRET: &str = "hostile-secret-7f3a";
const TOKEN: &str = "hostile-token-c91e";

fn bounds(served: &Served) -> Bounds {
    Bounds {
        legit: served.legit_bytes,
        slack: 1 << 20,
        budget: Duration::from_secs(20),
    }
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{USER}:{SECRET}").as_bytes())
    )
}

/// An honest image under `repo:v1` on a registry that wants `USER:SECRET` (Basic).
fn guarded_basic(repo: &str) -> (HostileRegistry, Served, Vec<u8>) {
    let reg = HostileRegistry::start().unwrap();
    let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
    let bytes = layer.0.clone();
    let served = reg.image(repo, "v1", &[layer], None).unwrap();
    reg.guard(basic(), r#"Basic realm="hostile""#);
    (reg, served, bytes)
}

/// An honest image under `repo:v1` on a registry that wants a bearer token from its own
/// `/token`, which wants `USER:SECRET`.
fn guarded_bearer(repo: &str) -> (HostileRegistry, Served, Vec<u8>) {
    let reg = HostileRegistry::start().unwrap();
    let layer = OciLayout::tar_gz(&[("hello.txt", b"hello\n")]).unwrap();
    let bytes = layer.0.clone();
    let served = reg.image(repo, "v1", &[layer], None).unwrap();
    reg.guard(
        format!("Bearer {TOKEN}"),
        format!(
            r#"Bearer realm="{}/token",service="hostile",scope="repository:{repo}:pull""#,
            reg.url()
        ),
    );
    let want = basic();
    reg.route_fn("/token", move |req: &Request| {
        if req.header("authorization") == Some(want.as_str()) {
            Response::ok(format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#))
                .header("Content-Type", "application/json")
        } else {
            Response::status(401)
        }
    });
    (reg, served, bytes)
}

/// `DOCKER_CONFIG` holding `USER:SECRET` for `reg` only, in a directory that outlives
/// the run.
fn creds_for(reg: &HostileRegistry) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = docker_config(dir.path(), &reg.host(), USER, SECRET);
    (dir, cfg)
}

/// Asserts no request `other` saw carries any credential for the guarded registry.
fn assert_no_credentials(case: &str, other: &HostileRegistry) {
    for req in other.requests() {
        assert!(
            req.header("authorization").is_none(),
            "{case}: {} {} reached the other host with Authorization: {:?}",
            req.method,
            req.target,
            req.header("authorization")
        );
        for (name, value) in &req.headers {
            assert!(
                !value.contains(SECRET) && !value.contains(TOKEN) && !value.contains(&basic()[6..]),
                "{case}: header {name} carried a credential to the other host: {value}"
            );
        }
        assert!(
            !req.target.contains(SECRET) && !req.target.contains(TOKEN),
            "{case}: the URL carried a credential to the other host: {}",
            req.target
        );
    }
}

/// Asserts `reg` served `path` to an authorised request: the hostile answer was reached.
fn assert_reached(case: &str, reg: &HostileRegistry, path: &str) {
    assert!(
        reg.requests()
            .iter()
            .any(|r| r.path() == path && r.header("authorization").is_some()),
        "{case}: {path} was never requested with credentials, so the case proves nothing"
    );
}

fn redirect_off_host(case: &str, reg: &HostileRegistry, served: &Served, layer: Vec<u8>) {
    let other = HostileRegistry::start().unwrap();
    other.route("/elsewhere/layer", Response::ok(layer));
    reg.route(
        &format!("/v2/off/blobs/{}", served.layer_digests[0]),
        Response::redirect(format!("{}/elsewhere/layer", other.url())),
    );
    let (_dir, cfg) = creds_for(reg);
    let (dist, f, ok) = pull_contained(
        case,
        &format!("{}/off:v1", reg.host()),
        &[("DOCKER_CONFIG", cfg.as_os_str())],
        bounds(served),
    );
    assert!(
        !reg.authorized_requests().is_empty(),
        "{case}: the registry never saw credentials, so the check proves nothing:\n{}",
        f.stderr_text()
    );
    assert_reached(
        case,
        reg,
        &format!("/v2/off/blobs/{}", served.layer_digests[0]),
    );
    assert_no_credentials(case, &other);
    if ok {
        assert!(
            other
                .requests()
                .iter()
                .any(|r| r.path() == "/elsewhere/layer"),
            "{case}: the pull succeeded without following the redirect"
        );
        assert_eq!(dist.committed_snapshots(), 1);
    }
}

#[test]
fn basic_credentials_do_not_follow_a_blob_redirect_to_another_host() {
    let (reg, served, layer) = guarded_basic("off");
    redirect_off_host("Basic, blob redirected off-host", &reg, &served, layer);
}

#[test]
fn bearer_tokens_do_not_follow_a_blob_redirect_to_another_host() {
    let (reg, served, layer) = guarded_bearer("off");
    redirect_off_host("Bearer, blob redirected off-host", &reg, &served, layer);
}

#[test]
fn credentials_do_not_follow_a_manifest_redirect_to_another_host() {
    let (reg, served, _) = guarded_bearer("off");
    let other = HostileRegistry::start().unwrap();
    other.route(
        "/elsewhere/manifest",
        Response::ok(served.manifest.clone())
            .header("Content-Type", dist_test_support::OCI_MANIFEST)
            .header("Docker-Content-Digest", served.manifest_digest.clone()),
    );
    let to = Response::redirect(format!("{}/elsewhere/manifest", other.url()));
    reg.route("/v2/off/manifests/v1", to.clone());
    reg.route(&format!("/v2/off/manifests/{}", served.manifest_digest), to);
    let (_dir, cfg) = creds_for(&reg);
    let case = "Bearer, manifest redirected off-host";
    let (_, f, _) = pull_contained(
        case,
        &format!("{}/off:v1", reg.host()),
        &[("DOCKER_CONFIG", cfg.as_os_str())],
        bounds(&served),
    );
    assert!(!reg.authorized_requests().is_empty(), "{}", f.stderr_text());
    assert_no_credentials(case, &other);
}

#[test]
fn redirect_loops_fail_within_bounds() {
    let (reg, served, _) = guarded_basic("loop");
    let blob = format!("/v2/loop/blobs/{}", served.layer_digests[0]);
    reg.route(&blob, Response::redirect(format!("{}{blob}", reg.url())));
    let (_dir, cfg) = creds_for(&reg);
    let (dist, _, ok) = pull_contained(
        "blob redirecting to itself",
        &format!("{}/loop:v1", reg.host()),
        &[("DOCKER_CONFIG", cfg.as_os_str())],
        bounds(&served),
    );
    assert!(!ok, "a redirect loop ended in success");
    assert_reached("redirect loop", &reg, &blob);
    assert_eq!(dist.committed_snapshots(), 0);
    let hops = reg.requests().iter().filter(|r| r.path() == blob).count();
    assert!(hops < 100, "{hops} requests for a looping blob");

    // Ping-pong between two hosts.
    let (reg, served, _) = guarded_basic("loop");
    let other = HostileRegistry::start().unwrap();
    let blob = format!("/v2/loop/blobs/{}", served.layer_digests[0]);
    reg.route(&blob, Response::redirect(format!("{}/pong", other.url())));
    other.route("/pong", Response::redirect(format!("{}{blob}", reg.url())));
    let (_dir, cfg) = creds_for(&reg);
    let (_, _, ok) = pull_contained(
        "blob redirecting between two hosts",
        &format!("{}/loop:v1", reg.host()),
        &[("DOCKER_CONFIG", cfg.as_os_str())],
        bounds(&served),
    );
    assert!(!ok, "a redirect ping-pong ended in success");
    assert_reached("ping-pong", &reg, &blob);
    assert_no_credentials("ping-pong", &other);
}

#[test]
fn redirects_to_non_http_schemes_fail_within_bounds() {
    support::each_case(
        [
            "file:///etc/passwd",
            "ftp://127.0.0.1/layer",
            "gopher://127.0.0.1:70/1",
            "data:application/octet-stream;base64,AAAA",
            "unix:///var/run/docker.sock",
            "http://",
            "//",
            "\u{7f}garbage",
        ],
        |location| {
            let (reg, served, _) = guarded_basic("scheme");
            reg.route(
                &format!("/v2/scheme/blobs/{}", served.layer_digests[0]),
                Response::redirect(*location),
            );
            let (_dir, cfg) = creds_for(&reg);
            let (dist, _, ok) = pull_contained(
                &format!("redirect to {location:?}"),
                &format!("{}/scheme:v1", reg.host()),
                &[("DOCKER_CONFIG", cfg.as_os_str())],
                bounds(&served),
            );
            assert!(!ok, "a redirect to {location:?} ended in success");
            assert_reached(
                location,
                &reg,
                &format!("/v2/scheme/blobs/{}", served.layer_digests[0]),
            );
            assert_eq!(dist.committed_snapshots(), 0);
        },
    );
}

/// A bearer-guarded registry whose `/token` answers `token` (after checking nothing).
fn with_token_response(case: &str, token: Response, must_fail: bool) {
    let (reg, served, _) = guarded_bearer("tok");
    reg.route("/token", token);
    let (_dir, cfg) = creds_for(&reg);
    let (dist, f, ok) = pull_contained(
        case,
        &format!("{}/tok:v1", reg.host()),
        &[("DOCKER_CONFIG", cfg.as_os_str())],
        Bounds {
            budget: Duration::from_secs(30),
            ..bounds(&served)
        },
    );
    if must_fail {
        assert!(!ok, "{case}: the pull succeeded:\n{}", f.stderr_text());
    }
    assert!(
        reg.requests().iter().any(|r| r.path() == "/token"),
        "{case}: the token endpoint was never asked"
    );
    if !ok {
        assert_eq!(dist.committed_snapshots(), 0, "{case}");
    }
}

fn json(body: impl Into<Vec<u8>>) -> Response {
    Response::ok(body).header("Content-Type", "application/json")
}

#[test]
fn absurd_token_lifetimes_neither_panic_nor_break_the_pull() {
    support::each_case(
        [
            (
                "expires_in 2^64-1",
                format!(r#"{{"token":"{TOKEN}","expires_in":18446744073709551615}}"#),
            ),
            (
                "expires_in i64::MAX",
                format!(r#"{{"token":"{TOKEN}","expires_in":9223372036854775807}}"#),
            ),
            (
                "expires_in -1",
                format!(r#"{{"token":"{TOKEN}","expires_in":-1}}"#),
            ),
            (
                "expires_in 1e300",
                format!(r#"{{"token":"{TOKEN}","expires_in":1e300}}"#),
            ),
            (
                "expires_in 0",
                format!(r#"{{"token":"{TOKEN}","expires_in":0}}"#),
            ),
            (
                "issued_at garbage",
                format!(r#"{{"token":"{TOKEN}","expires_in":60,"issued_at":"yesterday"}}"#),
            ),
            (
                "issued_at year 9999, expires_in 2^64-1",
                format!(
                    r#"{{"token":"{TOKEN}","expires_in":18446744073709551615,"issued_at":"9999-12-31T23:59:59Z"}}"#
                ),
            ),
            (
                "issued_at year 1",
                format!(
                    r#"{{"token":"{TOKEN}","expires_in":300,"issued_at":"0001-01-01T00:00:00Z"}}"#
                ),
            ),
        ],
        |(case, body)| {
            with_token_response(case, json(body.clone()), false);
        },
    );
}

#[test]
fn garbage_token_responses_fail_within_bounds() {
    let huge = format!(r#"{{"token":"{}"}}"#, "a".repeat(8 << 20));
    support::each_case(
        [
            ("non-JSON token body", json("<html>not a token</html>")),
            ("empty token body", json("")),
            ("token is a number", json(r#"{"token":5}"#)),
            ("no token field", json(r#"{"expires_in":60}"#)),
            ("8 MiB token", json(huge)),
            (
                "endless token body",
                Response::with(200, Body::Endless { fill: b' ' }),
            ),
            (
                "64 MiB token body",
                Response::with(
                    200,
                    Body::Sized {
                        prefix: br#"{"token":""#.to_vec(),
                        fill: b'a',
                        len: 64 << 20,
                    },
                ),
            ),
            ("token endpoint 500", Response::status(500)),
            ("token endpoint redirect loop", Response::redirect("/token")),
        ],
        |(case, response)| {
            with_token_response(case, response.clone(), true);
        },
    );
}

#[test]
fn a_token_endpoint_that_never_answers_fails_in_time() {
    with_token_response(
        "token: accept, never answer",
        Response::with(200, Body::Hang),
        true,
    );
}

#[test]
fn a_token_body_that_stalls_fails_in_time() {
    with_token_response(
        "token: headers, then a stalled body",
        Response::with(
            200,
            Body::Stall {
                bytes: br#"{"token":"#.to_vec(),
                declared: 100,
            },
        ),
        true,
    );
}

#[test]
fn garbage_challenges_fail_within_bounds() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let challenges = [
        String::new(),
        "Bearer".into(),
        "Bearer realm=".into(),
        r#"Bearer realm=""#.into(),
        r#"Bearer realm="file:///etc/passwd",service="x""#.into(),
        r#"Bearer realm="ftp://127.0.0.1/token""#.into(),
        format!(r#"Bearer realm="http://{closed}/token""#),
        r#"Bearer realm="http://[::1""#.into(),
        "Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXegDTALBgkqhkiG9xIBAgKiggFkBIIBYGCCAVwGCSqGSIb3EgECAgEAboIBSzCCAUegAwIBBaEDAgEOogcDBQAgAAAAo4HEYYHBMIG+oAMCAQWhEBsOQ09OVE9TTy5DT1JQLkNPTaIcMBqgAwIBAqETMBEbBEhUVFAbCXdlYnNlcnZlcqOBhjCBg6ADAgEXoQMCAQOidwR1".into(),
        format!("Bearer {}", "k=v,".repeat(2000)),
        format!(r#"Bearer realm="{}""#, "x".repeat(6000)),
        r#"Bearer realm="http://127.0.0.1/token",realm="http://127.0.0.2/token",,,=,"#.into(),
        "Basic realm=\"a\", Bearer, Digest nonce=\"".into(),
    ];
    support::each_case(challenges, |challenge| {
        let (reg, served, _) = guarded_bearer("chal");
        reg.guard(format!("Bearer {TOKEN}"), challenge.clone());
        let (_dir, cfg) = creds_for(&reg);
        let case = format!("challenge {:?}", support::elide(challenge));
        let (dist, f, ok) = pull_contained(
            &case,
            &format!("{}/chal:v1", reg.host()),
            &[("DOCKER_CONFIG", cfg.as_os_str())],
            bounds(&served),
        );
        assert!(!ok, "{case}: the pull succeeded:\n{}", f.stderr_text());
        assert_eq!(dist.committed_snapshots(), 0);
    });
}

#[test]
fn a_challenge_without_credentials_configured_fails_within_bounds() {
    let (reg, served, _) = guarded_bearer("anon");
    let empty = tempfile::tempdir().unwrap();
    let (_, f, ok) = pull_contained(
        "token auth, no credentials",
        &format!("{}/anon:v1", reg.host()),
        &[("DOCKER_CONFIG", OsStr::new(empty.path()))],
        bounds(&served),
    );
    assert!(!ok, "{}", f.stderr_text());
    assert!(
        reg.authorized_requests().is_empty(),
        "credentials appeared from nowhere"
    );
}
