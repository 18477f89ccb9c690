//! Every `dist` command that writes to stdout ends quietly with status 0 when the reader of
//! its stdout goes away (`dist images | head -1`): no "failed printing to stdout" panic, no
//! `error:` line, nothing on stderr.
//!
//! Each command runs twice: once with the read end of its stdout pipe closed before it
//! writes anything (so its first write certainly fails with `EPIPE`), and once as the seed's
//! `dist ... | head -1` pipeline under `set -o pipefail`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use dist_test_support::{AuthMode, OciLayout, Platform, Push, Registry};
use sha2::{Digest as _, Sha256};
use support::{Dist, dist_bin};

/// Runs `dist args...` with its stdout pipe closed before it starts writing.
fn with_stdout_closed(dist: &Dist, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = dist.cmd();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn dist");
    // No reader is left: dist's first write to stdout gets EPIPE.
    drop(child.stdout.take());
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
    }
    child.wait_with_output().expect("wait dist")
}

/// Runs `dist args... | head -1` in bash with `pipefail`, so dist's status is the pipeline's.
fn piped_to_head(dist: &Dist, args: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} --root {} --plain-http {args} | head -1 >/dev/null",
            dist_bin().display(),
            dist.root.path().display()
        ))
        .output()
        .expect("bash")
}

/// Both ways of closing the pipe early end with status 0 and an empty stderr.
fn assert_quiet(dist: &Dist, args: &[&str]) {
    for (how, out) in [
        ("stdout closed", with_stdout_closed(dist, args, None)),
        ("| head -1", piped_to_head(dist, &args.join(" "))),
    ] {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "dist {args:?} ({how}) exited {} with stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Ingests a few blobs so listings have several lines; returns their digests.
fn store_with_blobs(dist: &Dist) -> Vec<String> {
    (0..3)
        .map(|i| {
            let data = format!("blob number {i}\n");
            let args = ["ingest", &format!("ref-{i}")];
            let out = dist.run_with(&args, Some(data.as_bytes()));
            support::assert_success(&out, &args);
            format!("sha256:{}", hex::encode(Sha256::digest(data.as_bytes())))
        })
        .collect()
}

#[test]
fn content_listings_exit_0_quietly_when_stdout_closes() {
    let dist = Dist::new();
    let digests = store_with_blobs(&dist);
    // A partial ingest, so `active` has a line below its header.
    let _ = dist.run_with(
        &["ingest", "--expected-size", "100", "partial"],
        Some(b"abc"),
    );
    assert!(dist.ok(&["active"]).contains("partial"));

    assert_quiet(&dist, &["list"]);
    assert_quiet(&dist, &["list", "-q"]);
    assert_quiet(&dist, &["active"]);
    let mut path = vec!["path"];
    path.extend(digests.iter().map(String::as_str));
    assert_quiet(&dist, &path);
    path.insert(1, "-n");
    assert_quiet(&dist, &path);
}

#[test]
fn fetch_object_exits_0_quietly_when_stdout_closes() {
    let reg = Registry::start(AuthMode::None).expect("start docker-registry");
    let mut layout = OciLayout::new().unwrap();
    // A layer larger than a pipe's buffer, so `| head -1` closes while dist still writes.
    let big: Vec<u8> = (0..400_000u32)
        .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
        .collect();
    let built = layout
        .add_image(
            Some("v1"),
            &Platform::new("linux", "amd64"),
            &[("big.bin", &big)],
        )
        .unwrap();
    reg.push(layout.path(), "v1", "app:v1", Push::oci())
        .unwrap();
    let dist = Dist::new();
    let reference = format!("{}/app:v1", reg.host());
    let layer = built.children[1].digest().to_string();
    assert_quiet(&dist, &["fetch-object", &reference]);
    assert_quiet(&dist, &["fetch-object", &reference, &layer]);
}

#[test]
fn image_commands_exit_0_quietly_when_stdout_closes() {
    let reg = Registry::start(AuthMode::None).expect("start docker-registry");
    let mut layout = OciLayout::new().unwrap();
    let platform = Platform::new(std::env::consts::OS, host_arch());
    for tag in ["v1", "v2"] {
        layout
            .add_image(Some(tag), &platform, &[("a.txt", tag.as_bytes())])
            .unwrap();
        reg.push(layout.path(), tag, &format!("app:{tag}"), Push::oci())
            .unwrap();
    }
    let dist = Dist::new();
    let v1 = format!("{}/app:v1", reg.host());
    let v2 = format!("{}/app:v2", reg.host());
    dist.ok(&["pull", &v1]);
    // `pull` reports progress on stderr; what matters is that it ends well, without a panic.
    let out = with_stdout_closed(&dist, &["pull", &v2], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked") && !stderr.contains("error:"),
        "{stderr}"
    );
    assert_quiet(&dist, &["images"]);
    let (layer, _) = OciLayout::tar_gz(&[("b.txt", b"b")]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("applied");
    std::fs::create_dir(&target).unwrap();
    let out = with_stdout_closed(&dist, &["apply", target.to_str().unwrap()], Some(&layer));
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let out = with_stdout_closed(&dist, &["images", "rm", &v1], None);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

/// The OCI name of this host's architecture.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
