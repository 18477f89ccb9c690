//! End-to-end tests of the `dist` example against a real registry (Debian's
//! docker-registry), with images built and pushed by umoci and skopeo.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dist_test_support::{AuthMode, OciLayout, Platform, Push, Registry};
use support::{Dist, listing, run, sh, skopeo_push, umoci_image};

fn registry() -> Registry {
    Registry::start(AuthMode::None).expect("start docker-registry")
}

#[test]
fn content_commands_and_the_seed_pipeline_list_delete() {
    let dist = Dist::new();
    // A short ingest fails and stays resumable; `active` shows it.
    let err = dist.fails(&["ingest", "--expected-size", "6", "my-ref"], Some(b"abc"));
    assert!(err.contains("my-ref"), "{err}");
    let active = dist.ok(&["active"]);
    assert!(
        active
            .lines()
            .any(|l| l.starts_with("my-ref") && l.contains("3 B")),
        "{active}"
    );
    // The whole content again resumes it and commits with the expected digest.
    let digest = dist::content::sha256_of(b"abcdef").to_string();
    let out = dist.run_with(
        &[
            "ingest",
            "--expected-size",
            "6",
            "--expected-digest",
            &digest,
            "my-ref",
        ],
        Some(b"abcdef"),
    );
    support::assert_success(&out, &["ingest"]);
    assert!(!dist.ok(&["active"]).contains("my-ref"));
    assert_eq!(dist.ok(&["list", "-q"]).trim(), digest);
    let path = dist.ok(&["path", "-n", &digest]);
    assert_eq!(std::fs::read(path.trim()).unwrap(), b"abcdef");
    let with_digest = dist.ok(&["path", &digest]);
    assert!(with_digest.starts_with(&format!("{digest} ")));
    // The seed's `dist list -q | xargs dist delete` empties the store.
    sh(&dist, "$DIST list -q | xargs $DIST delete");
    assert_eq!(dist.ok(&["list", "-q"]), "");
    let err = dist.fails(&["delete", &digest], None);
    assert!(err.contains(&digest), "{err}");
}

#[test]
fn fetch_object_is_byte_identical_to_skopeo_and_pipes_to_jq() {
    let reg = registry();
    let mut layout = OciLayout::new().unwrap();
    let built = layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("a.txt", b"hello")],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "app:v1", Push::oci())
        .unwrap();
    let dist = Dist::new();
    let reference = format!("{}/app:v1", reg.host());
    let out = dist.run_with(&["fetch-object", &reference], None);
    support::assert_success(&out, &["fetch-object"]);
    assert_eq!(out.stdout, reg.inspect_raw("app:v1").unwrap());
    // The seed's `dist fetch-object REF | jq -r '.layers[].digest'`.
    let digests = sh(
        &dist,
        &format!("$DIST fetch-object {reference} | jq -r '.layers[].digest'"),
    );
    let layer = built.children[1].digest().to_string();
    assert_eq!(digests.trim(), layer);
    // A named blob of the repository, verified on the way.
    let blob = dist.run_with(&["fetch-object", &reference, &layer], None);
    support::assert_success(&blob, &["fetch-object", "<layer>"]);
    assert_eq!(dist::content::sha256_of(&blob.stdout).to_string(), layer);
    let err = dist.fails(&["fetch-object", &format!("{}/app:nope", reg.host())], None);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn pull_then_unpack_equals_umoci_unpack_and_second_pull_downloads_nothing() {
    let reg = registry();
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_image(work.path());
    skopeo_push(&layout, "img", &reg.host(), "umoci/img:latest");
    let dist = Dist::new();
    let reference = format!("{}/umoci/img:latest", reg.host());

    let first = dist.run_with(&["pull", &reference], None);
    support::assert_success(&first, &["pull"]);
    let chain = String::from_utf8(first.stdout).unwrap();
    assert!(chain.trim().starts_with("sha256:"), "{chain}");
    let snapshots = dist.snapshot_count();
    assert_eq!(snapshots, 2, "one snapshot per layer");
    if rustix::process::geteuid().is_root() {
        // As root on a filesystem that takes overlay whiteouts, the default is overlay.
        let overlay = dist.root.path().join("snapshots/overlay/snapshots");
        assert_eq!(
            std::fs::read_dir(overlay).unwrap().count(),
            2,
            "pulled into overlay"
        );
    }

    // Everything present: no blob bytes, nothing applied, same top ChainID.
    let second = dist.run_with(&["pull", &reference], None);
    support::assert_success(&second, &["pull", "(again)"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("total: 0 B"),
        "second pull transferred bytes:\n{stderr}"
    );
    assert_eq!(String::from_utf8(second.stdout).unwrap(), chain);
    assert_eq!(dist.snapshot_count(), snapshots);

    let images = dist.ok(&["images"]);
    assert!(images.contains(&reference), "{images}");

    // After a pull, unpack copies the committed snapshot.
    let ours = work.path().join("ours");
    let out = dist.run_with(&["-vv", "unpack", &reference, ours.to_str().unwrap()], None);
    support::assert_success(&out, &["unpack"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ing the committed snapshot"),
        "unpack after pull did not use the snapshot"
    );
    let bundle = work.path().join("umoci-bundle");
    run(std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&bundle));
    let theirs = listing(&bundle.join("rootfs"));
    let mine = listing(&ours);
    assert_eq!(mine, theirs);
    assert!(mine.contains_key("etc/added") && !mine.contains_key("etc/gone"));

    // After a fetch (content only, no snapshots), unpack applies the layers from the store.
    let fetched = Dist::new();
    fetched.ok(&["fetch", &reference]);
    let applied = work.path().join("applied");
    fetched.ok(&["unpack", &reference, applied.to_str().unwrap()]);
    assert_eq!(listing(&applied), theirs);

    // The target must be empty now.
    let err = dist.fails(&["unpack", &reference, ours.to_str().unwrap()], None);
    assert!(err.contains("not empty"), "{err}");

    dist.ok(&["images", "rm", &reference]);
    assert!(!dist.ok(&["images"]).contains(&reference));
}

#[test]
fn pull_selects_the_requested_platform_from_an_index() {
    let reg = registry();
    let mut layout = OciLayout::new().unwrap();
    let mut arm64 = Platform::new("linux", "arm64");
    arm64.variant = Some("v8".into());
    let mut armv7 = Platform::new("linux", "arm");
    armv7.variant = Some("v7".into());
    layout
        .add_index("multi", &[Platform::new("linux", "amd64"), arm64, armv7])
        .unwrap();
    reg.push(layout.path(), "multi", "multi:latest", Push::oci().all())
        .unwrap();
    let reference = format!("{}/multi:latest", reg.host());
    for (platform, expect) in [
        ("linux/arm64", "built for linux/arm64"),
        ("linux/arm/v7", "built for linux/arm"),
        ("linux/amd64", "built for linux/amd64"),
    ] {
        let dist = Dist::new();
        dist.ok(&["--platform", platform, "pull", &reference]);
        let dir = dist.root.path().join("rootfs");
        dist.ok(&[
            "--platform",
            platform,
            "unpack",
            &reference,
            dir.to_str().unwrap(),
        ]);
        let note = std::fs::read_to_string(dir.join("platform.txt")).unwrap();
        assert_eq!(note.trim(), expect, "--platform {platform}");
    }
}

#[test]
fn bad_input_gives_one_error_line_and_a_failure_status() {
    let dist = Dist::new();
    let unknown = format!("sha256:{}", "0".repeat(64));
    let err = dist.fails(&["pull", "Not A Reference!"], None);
    assert!(err.contains("Not A Reference!"), "{err}");
    dist.fails(&["path", &unknown], None);
    dist.fails(&["delete", &unknown], None);
    dist.fails(&["path", "sha256:xyz"], None);
    dist.fails(&["unpack", "127.0.0.1:1/never/pulled:latest", "/tmp"], None);
    let target = tempfile::tempdir().unwrap();
    let err = dist.fails(
        &["apply", target.path().to_str().unwrap()],
        Some(b"this is not a tar stream at all, just some bytes that go on for a while......"),
    );
    assert!(
        err.starts_with("error: ") || err.contains("\nerror: "),
        "{err}"
    );
    let err = dist.fails(
        &["--platform", "linux/amd64", "pull", "127.0.0.1:1/x:y"],
        None,
    );
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

/// A TCP proxy in front of the registry that can slow its responses down to a crawl.
struct ThrottleProxy {
    addr: String,
    slow: Arc<AtomicBool>,
}

impl ThrottleProxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let slow = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&slow);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(c2, s2, None));
                let flag = Arc::clone(&flag);
                std::thread::spawn(move || pipe(server, client, Some(flag)));
            }
        });
        ThrottleProxy { addr, slow }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, slow: Option<Arc<AtomicBool>>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if slow.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_killed_pull_resumes_its_partial_download() {
    let reg = registry();
    let proxy = ThrottleProxy::start(reg.host());
    // 4 MiB of incompressible data: about 5 s through the throttled proxy.
    let mut data = vec![0u8; 4 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut layout = OciLayout::new().unwrap();
    layout
        .add_image(
            Some("big"),
            &Platform::new("linux", "amd64"),
            &[("big.bin", &data)],
        )
        .unwrap();
    reg.push(layout.path(), "big", "big:latest", Push::oci())
        .unwrap();
    let reference = format!("{}/big:latest", proxy.addr);

    let dist = Dist::new();
    let mut child = dist
        .cmd()
        .args(["pull", &reference])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let partial = loop {
        let active = dist.ok(&["active"]);
        if let Some(line) = active.lines().find(|l| l.starts_with("layer-")) {
            let size: f64 = line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap_or(0.0);
            // Bytes stored and the layer's snapshot prepared: unpacking from the stream.
            if size > 0.0 && dist.snapshot_count() == 1 {
                break line.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the layer download never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dist.ok(&["active"]).contains("layer-"),
        "partial ingest gone: {partial}"
    );

    proxy.slow.store(false, Ordering::Relaxed);
    let out = dist.run_with(&["pull", &reference], None);
    support::assert_success(&out, &["pull", "(resumed)"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resuming at"), "did not resume:\n{stderr}");
    assert_eq!(
        dist.ok(&["active"]).lines().count(),
        1,
        "ingests left behind"
    );
    let dir = dist.root.path().join("rootfs");
    dist.ok(&["unpack", &reference, dir.to_str().unwrap()]);
    assert_eq!(std::fs::read(dir.join("big.bin")).unwrap(), data);
}
