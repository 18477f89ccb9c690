//! Credentials are asked without blocking: a slow credential helper for one registry does
//! not hold up a pull from another (real `docker-registry`s, htpasswd auth).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fetch_all;
use dist_remotes::{DockerConfig, DockerResolver, HostsConfig, Resolver, ResolverOptions};
use dist_test_support::{AuthMode, OciLayout, Platform, Push, Registry};

/// How long the helper takes for the slow host.
const SLOW: Duration = Duration::from_secs(5);

/// Starts a registry with one image, `test/img:v1`; returns it and the image's objects.
fn registry_with_image() -> (Registry, dist_test_support::Built) {
    let reg = Registry::start(AuthMode::Htpasswd).unwrap();
    let mut layout = OciLayout::new().unwrap();
    let img = layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("hello.txt", b"hello\n")],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "test/img:v1", Push::oci())
        .unwrap_or_else(|e| panic!("{e}\n{}", reg.log()));
    (reg, img)
}

/// Resolves `test/img:v1` on `host` and fetches the manifest and every blob below it;
/// returns when it finished, counted from `start`.
async fn pull(
    r: &DockerResolver,
    host: &str,
    img: &dist_test_support::Built,
    start: Instant,
) -> Duration {
    let (name, desc) = r.resolve(&format!("{host}/test/img:v1")).await.unwrap();
    let f = r.fetcher(&name).await.unwrap();
    assert_eq!(fetch_all(f.as_ref(), &desc).await.unwrap(), img.root_bytes);
    for child in &img.children {
        fetch_all(f.as_ref(), child).await.unwrap();
    }
    start.elapsed()
}

/// Writes `script` to `path`, executable.
fn write_executable(path: &std::path::Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// A single-threaded runtime: any blocking call (a helper polled with `thread::sleep`, a
// lock held across the helper) would stall the other pull too.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_credential_helper_for_one_host_does_not_delay_a_pull_from_another() {
    let (slow_reg, slow_img) = registry_with_image();
    let (fast_reg, fast_img) = registry_with_image();
    let (slow, fast) = (slow_reg.host(), fast_reg.host());
    let creds = |reg: &Registry| {
        let c = reg.creds().unwrap();
        let (u, p) = c.split_once(':').unwrap();
        format!(r#"{{"ServerURL":"x","Username":"{u}","Secret":"{p}"}}"#)
    };
    let dir = tempfile::tempdir().unwrap();
    write_executable(
        &dir.path().join("docker-credential-slow"),
        &format!(
            "#!/bin/sh\nread -r server\ncase \"$server\" in\n  '{slow}') sleep {}; echo '{}' ;;\n  '{fast}') echo '{}' ;;\n  *) echo 'credentials not found'; exit 1 ;;\nesac\n",
            SLOW.as_secs(),
            creds(&slow_reg),
            creds(&fast_reg),
        ),
    );
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"credsStore": "slow"}"#).unwrap();
    let cfg = DockerConfig::from_file(&config)
        .unwrap()
        .with_helper_dir(dir.path());
    let opts = ResolverOptions::default()
        .with_credentials(Arc::new(cfg))
        .with_hosts(
            HostsConfig::new()
                .with_plain_http(&slow)
                .with_plain_http(&fast),
        );
    let r = DockerResolver::new(opts);

    let start = Instant::now();
    let (slow_done, fast_done) = tokio::join!(
        pull(&r, &slow, &slow_img, start),
        pull(&r, &fast, &fast_img, start)
    );
    assert!(
        slow_done >= SLOW,
        "the slow host waited for its helper: {slow_done:?}"
    );
    // A generous bound (a loaded machine), far under the slow helper's 5 s.
    assert!(
        fast_done < Duration::from_secs(2),
        "the other host was held up: {fast_done:?} (slow host {slow_done:?})"
    );
}
