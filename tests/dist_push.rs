//! End-to-end tests of `dist push` and `dist copy` against real `docker-registry`s with
//! their access logs on: what skopeo, umoci and ctr read back, re-pushes that upload
//! nothing, same-registry copies that mount, and a killed push that resumes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use dist_test_support::{AuthMode, Containerd, OciLayout, Platform, Push, Registry};
use support::{Dist, listing, run, skopeo_push, umoci_image};

fn registry() -> Registry {
    Registry::start_with_access_log(AuthMode::None).expect("start docker-registry")
}

/// The stored bytes of blob `digest` (`sha256:<hex>`) in `dist`'s root.
fn stored(dist: &Dist, digest: &str) -> Vec<u8> {
    let hex = digest
        .trim()
        .strip_prefix("sha256:")
        .expect("sha256 digest");
    std::fs::read(dist.root.path().join("content/blobs/sha256").join(hex)).unwrap()
}

/// The sizes of every stored blob except `but` (the manifest).
fn blob_bytes_except(dist: &Dist, but: &str) -> u64 {
    let hex = but.trim().trim_start_matches("sha256:");
    dist.verified_blobs()
        .iter()
        .filter(|(p, _)| !p.ends_with(hex))
        .map(|(_, n)| n)
        .sum()
}

/// Every stored blob's `containerd.io/distribution.source.127.0.0.1` label.
fn source_labels(dist: &Dist) -> Vec<(String, Option<String>)> {
    use dist::content::Manager;
    let store = dist::content::LocalStore::open(dist.root.path().join("content")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    dist.verified_blobs()
        .iter()
        .map(|(path, _)| {
            let hex = path.file_name().unwrap().to_string_lossy();
            let digest: oci_spec::image::Digest = format!("sha256:{hex}").parse().unwrap();
            let info = rt.block_on(store.info(&digest)).unwrap();
            let label = info
                .labels
                .get("containerd.io/distribution.source.127.0.0.1")
                .cloned();
            (digest.to_string(), label)
        })
        .collect()
}

#[test]
fn a_pushed_image_reads_back_identically_with_skopeo_umoci_and_ctr() {
    let a = registry();
    let b = registry();
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_image(work.path());
    skopeo_push(&layout, "img", &a.host(), "src/img:v1");
    let source = format!("{}/src/img:v1", a.host());
    let target = format!("{}/pushed/img:v1", b.host());

    let dist = Dist::new();
    dist.ok(&["pull", &source]);
    // The pull labelled every blob with its source, as containerd does (host without port).
    let labels = source_labels(&dist);
    assert_eq!(labels.len(), 4, "manifest, config, two layers: {labels:?}");
    for (digest, value) in &labels {
        assert_eq!(value.as_deref(), Some("src/img"), "{digest}");
    }
    let digest = dist.ok(&["push", &target, &source]);
    let manifest = stored(&dist, &digest);
    // And the push added the destination (same host name: the port is not in the key).
    for (digest, value) in source_labels(&dist) {
        assert_eq!(value.as_deref(), Some("pushed/img,src/img"), "{digest}");
    }

    // The registry serves exactly the stored manifest bytes.
    assert_eq!(b.inspect_raw("pushed/img:v1").unwrap(), manifest);
    assert_eq!(a.inspect_raw("src/img:v1").unwrap(), manifest);
    let log = b.access_log();
    assert_eq!(
        log.uploaded_blob_bytes(),
        blob_bytes_except(&dist, &digest),
        "every blob uploaded once:\n{:?}",
        log.entries()
    );

    // skopeo copies it back out, umoci unpacks it: the tree `dist unpack` gives.
    let copied = work.path().join("copied");
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
        ])
        .arg(format!("docker://{target}"))
        .arg(format!("oci:{}:img", copied.display())));
    let bundle = work.path().join("bundle-copied");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:img", copied.display()))
        .arg(&bundle));
    let ours = work.path().join("ours");
    dist.ok(&["unpack", &source, ours.to_str().unwrap()]);
    let theirs = listing(&bundle.join("rootfs"));
    assert_eq!(listing(&ours), theirs);
    assert!(theirs.contains_key("etc/added"));

    // containerd pulls it.
    let containerd = Containerd::start().unwrap();
    containerd
        .ctr_ok(["images", "pull", "--plain-http", target.as_str()])
        .unwrap_or_else(|e| panic!("{e}\n{}", containerd.log()));
    let images = containerd.ctr_ok(["images", "ls", "-q"]).unwrap();
    assert!(images.contains(&target), "{images}");

    // Pushing again uploads no blob byte.
    let mark = b.access_log().len();
    let out = dist.run_with(&["push", &target, &source], None);
    support::assert_success(&out, &["push", "(again)"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exists"), "{stderr}");
    assert!(stderr.contains("total: 0 B"), "{stderr}");
    let again = b.access_log().since(mark);
    assert_eq!(again.uploaded_blob_bytes(), 0, "{:?}", again.entries());
    assert_eq!(again.blob_writes(), 0, "{:?}", again.entries());
}

#[test]
fn push_of_an_image_not_in_the_store_names_it() {
    let b = registry();
    let dist = Dist::new();
    let err = dist.fails(
        &[
            "push",
            &format!("{}/x/y:1", b.host()),
            "example.com/absent:1",
        ],
        None,
    );
    assert!(err.contains("example.com/absent:1"), "{err}");
}

#[test]
fn copy_between_repositories_of_one_registry_mounts_every_blob() {
    let a = registry();
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_image(work.path());
    skopeo_push(&layout, "img", &a.host(), "src/img:v1");
    let mark = a.access_log().len();

    let dist = Dist::new();
    let out = dist.run_with(
        &[
            "copy",
            &format!("{}/src/img:v1", a.host()),
            &format!("{}/dst/img:v1", a.host()),
        ],
        None,
    );
    support::assert_success(&out, &["copy"]);
    let copy = a.access_log().since(mark);
    assert_eq!(copy.uploaded_blob_bytes(), 0, "{:?}", copy.entries());
    // Config and two layers.
    assert_eq!(copy.mounts(), 3, "{:?}", copy.entries());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mounted"), "{stderr}");
    assert_eq!(
        a.inspect_raw("dst/img:v1").unwrap(),
        a.inspect_raw("src/img:v1").unwrap()
    );
}

#[test]
fn copy_to_another_registry_uploads_once_then_skips() {
    let a = registry();
    let b = registry();
    let work = tempfile::tempdir().unwrap();
    let layout = umoci_image(work.path());
    skopeo_push(&layout, "img", &a.host(), "src/img:v1");
    let src = format!("{}/src/img:v1", a.host());
    let dst = format!("{}/copy/img:v2", b.host());

    let dist = Dist::new();
    let digest = dist.ok(&["copy", &src, &dst]);
    assert_eq!(
        b.inspect_raw("copy/img:v2").unwrap(),
        stored(&dist, &digest)
    );
    let first = b.access_log();
    assert_eq!(
        first.uploaded_blob_bytes(),
        blob_bytes_except(&dist, &digest)
    );

    let out = dist.run_with(&["copy", &src, &dst], None);
    support::assert_success(&out, &["copy", "(again)"]);
    let again = b.access_log().since(first.len());
    assert_eq!(again.uploaded_blob_bytes(), 0, "{:?}", again.entries());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("total: 0 B"), "{stderr}");
}

/// `n` bytes that do not compress (xorshift).
fn incompressible(n: usize) -> Vec<u8> {
    let mut data = vec![0u8; n];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// docker-registry 2.8 cancels an upload session when a request carries an offset other
/// than the one it stored, which is what a process killed in the middle of a `PATCH` leaves
/// behind: there the blob in flight starts over, and what a second push must not send again
/// is every blob the first one completed (and, on registries that keep the session, the
/// chunks of the one in flight: the remotes crate's chunked-upload tests cover those).
#[test]
fn a_push_killed_midway_resumes_and_uploads_only_what_was_missing() {
    const CHUNK: u64 = 1 << 20;
    const LAYER: usize = 16 << 20;
    let a = registry();
    let b = registry();
    let mut layout = OciLayout::new().unwrap();
    let layers: Vec<(Vec<u8>, String)> = (0..4u8)
        .map(|i| {
            let mut data = incompressible(LAYER);
            data[0] = i;
            OciLayout::tar_gz(&[("big.bin", &data)]).unwrap()
        })
        .collect();
    layout
        .add_image_with_layers(Some("big"), &Platform::new("linux", "amd64"), &layers)
        .unwrap();
    drop(layers);
    a.push(layout.path(), "big", "big:v1", Push::oci()).unwrap();
    let source = format!("{}/big:v1", a.host());
    let target = format!("{}/big:v1", b.host());
    let dist = Dist::new();
    dist.ok(&["fetch", &source]);
    let chunk = CHUNK.to_string();
    let args = [
        "push",
        "--concurrency",
        "1",
        "--chunk-size",
        chunk.as_str(),
        &target,
        &source,
    ];

    let mut child = dist
        .cmd()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a layer is complete and the next one is on its way.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = b.access_log();
        if log.committed_blob_bytes() >= LAYER as u64 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "no layer was pushed in time");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the push finished before the kill");
    // The registry logs a request when its handler ends: let the cut one end first.
    std::thread::sleep(Duration::from_millis(300));
    let first = b.access_log();
    let completed = first.committed_blob_bytes();

    dist.ok(&args);
    let again = b.access_log().since(first.len());
    let total = blob_bytes_except(&dist, &stored_root(&dist, &source));
    let sent = again.uploaded_blob_bytes();
    assert!(completed > 0 && completed < total, "{completed} of {total}");
    assert!(
        sent <= total - completed,
        "the second push sent {sent} bytes; {completed} of {total} were complete:\n{:?}",
        again.entries()
    );
    assert!(again.blob_writes() > 0, "nothing was left to push");
    assert_eq!(
        b.inspect_raw("big:v1").unwrap(),
        a.inspect_raw("big:v1").unwrap()
    );
}

/// The digest of the image `reference` recorded in `dist`'s store.
fn stored_root(dist: &Dist, reference: &str) -> String {
    let images = dist.ok(&["images"]);
    let line = images
        .lines()
        .find(|l| l.contains(reference))
        .unwrap_or_else(|| panic!("{reference} not in:\n{images}"));
    line.split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {line}"))
        .to_string()
}

#[test]
fn pushing_platforms_the_store_lacks_names_the_missing_manifest_and_sends_nothing() {
    let a = registry();
    let b = registry();
    let mut layout = OciLayout::new().unwrap();
    let multi = layout
        .add_index(
            "multi",
            &[
                Platform::new("linux", "amd64"),
                Platform::new("linux", "arm64"),
            ],
        )
        .unwrap();
    a.push(layout.path(), "multi", "multi:v1", Push::oci().all())
        .unwrap();
    let source = format!("{}/multi:v1", a.host());
    let target = format!("{}/multi:v1", b.host());
    let arm64 = multi.children[1].digest().to_string();

    let dist = Dist::new();
    dist.ok(&["--platform", "linux/amd64", "pull", &source]);
    for args in [
        vec!["push", "--all-platforms", &target, &source],
        vec!["--platform", "linux/arm64", "push", &target, &source],
    ] {
        let err = dist.fails(&args, None);
        assert!(err.contains(&arm64), "{args:?}: {err}");
        assert!(err.contains("not stored locally"), "{args:?}: {err}");
    }
    // Nothing was sent for them: the check comes before the first upload.
    assert_eq!(b.access_log().blob_writes(), 0);

    // The default pushes what is stored; docker-registry refuses an index that names the
    // rest, by its code, and the error says what to do.
    let err = dist.fails(&["push", &target, &source], None);
    assert!(err.contains("MANIFEST_BLOB_UNKNOWN"), "{err}");
    assert!(err.contains("--all-platforms"), "{err}");

    // Once every platform is stored, --all-platforms pushes the index as it is.
    dist.ok(&["--platform", "linux/arm64", "pull", &source]);
    dist.ok(&["push", "--all-platforms", &target, &source]);
    assert_eq!(b.inspect_raw("multi:v1").unwrap(), multi.root_bytes);
}

#[test]
fn copy_with_a_platform_copies_that_manifest_alone() {
    let a = registry();
    let b = registry();
    let mut layout = OciLayout::new().unwrap();
    let multi = layout
        .add_index(
            "multi",
            &[
                Platform::new("linux", "amd64"),
                Platform::new("linux", "arm64"),
            ],
        )
        .unwrap();
    a.push(layout.path(), "multi", "multi:v1", Push::oci().all())
        .unwrap();
    let arm64 = multi.children[1].digest().to_string();

    let dist = Dist::new();
    let out = dist.ok(&[
        "--platform",
        "linux/arm64",
        "copy",
        &format!("{}/multi:v1", a.host()),
        &format!("{}/arm:v1", b.host()),
    ]);
    assert_eq!(out.trim(), arm64);
    let hex = arm64.trim_start_matches("sha256:");
    let manifest = std::fs::read(layout.path().join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(b.inspect_raw("arm:v1").unwrap(), manifest);
}
