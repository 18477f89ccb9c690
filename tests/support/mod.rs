//! Shared helpers for the `dist` end-to-end tests: the built example binary, a root per
//! test, listings of directory trees, and images built with umoci.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `target/<profile>/examples/dist`, built by `cargo test --all-targets` (or
/// `cargo build --example dist`) next to this test binary.
pub fn dist_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("examples").join("dist");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --all-targets` or `cargo build --example dist` first",
        bin.display()
    );
    bin
}

/// One `dist` root (temporary) talking plain HTTP to loopback registries.
pub struct Dist {
    pub root: tempfile::TempDir,
}

impl Dist {
    pub fn new() -> Self {
        Dist {
            root: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(dist_bin());
        cmd.arg("--root").arg(self.root.path()).arg("--plain-http");
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `dist args...` with `stdin`, returning the raw output.
    pub fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = self.cmd();
        cmd.args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn dist");
        if let Some(input) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            // A command that fails early may close stdin: that is its business.
            let _ = pipe.write_all(input);
        }
        child.wait_with_output().expect("wait dist")
    }

    /// Runs `dist args...`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run_with(args, None);
        assert_success(&out, args);
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `dist args...` expecting failure; returns the stderr, checked to be one
    /// `error: ...` line without a panic.
    pub fn fails(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.run_with(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "dist {args:?} succeeded; stderr:\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "dist {args:?} panicked:\n{stderr}"
        );
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: "),
            "dist {args:?}: no error line:\n{stderr}"
        );
        stderr
    }

    /// How many committed or active snapshots the native snapshotter holds.
    pub fn snapshot_count(&self) -> usize {
        let dir = self.root.path().join("snapshots/native/snapshots");
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }
}

pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "dist {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a shell pipeline with `DIST` set to the dist command line for `dist`'s root.
pub fn sh(dist: &Dist, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env(
            "DIST",
            format!(
                "{} --root {} --plain-http",
                dist_bin().display(),
                dist.root.path().display()
            ),
        )
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a tool, asserting success.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One line per entry below `root`: type, mode, owner, size, content hash or link target,
/// link count for files, and user xattrs; what must agree between two unpackers.
pub fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let ft = meta.file_type();
            let mode = meta.permissions().mode() & 0o7777;
            let owner = format!("{}:{}", meta.uid(), meta.gid());
            let what = if ft.is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if ft.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o} {owner}")
            } else if ft.is_file() {
                let hash = dist::content::sha256_of(&std::fs::read(&path).unwrap())
                    .digest()
                    .to_owned();
                format!(
                    "file {mode:o} {owner} {} nlink={} {hash}",
                    meta.len(),
                    meta.nlink()
                )
            } else {
                format!("other {mode:o} {owner} rdev={}", meta.rdev())
            };
            out.insert(rel, what);
        }
    }
    out
}

/// An OCI layout built with umoci from real directories: layer 1 holds files, a
/// directory tree, a symlink, a hardlink and a setuid binary; layer 2 deletes a file and a
/// directory (whiteouts) and adds one.
pub fn umoci_image(work: &Path) -> PathBuf {
    let layout = work.join("oci");
    let bundle = work.join("bundle");
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    run(Command::new("umoci")
        .args(["new", "--image"])
        .arg(format!("{}:img", layout.display())));
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc/conf.d")).unwrap();
    std::fs::create_dir_all(rootfs.join("usr/bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("var/cache/junk")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), b"dist-test\n").unwrap();
    std::fs::write(rootfs.join("etc/conf.d/a.conf"), b"a=1\n").unwrap();
    std::fs::write(rootfs.join("var/cache/junk/blob"), vec![7u8; 100_000]).unwrap();
    let tool = rootfs.join("usr/bin/tool");
    std::fs::write(&tool, b"#!/bin/sh\necho tool\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(&tool, rootfs.join("usr/bin/tool-link")).unwrap();
    std::os::unix::fs::symlink("../etc/hostname", rootfs.join("usr/hostname-link")).unwrap();
    std::fs::write(rootfs.join("etc/gone"), b"deleted in layer 2\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&bundle));
    // umoci diffs against the image a bundle was unpacked from: unpack again for layer 2.
    let bundle = work.join("bundle2");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::remove_file(rootfs.join("etc/gone")).unwrap();
    std::fs::remove_dir_all(rootfs.join("var/cache/junk")).unwrap();
    std::fs::write(rootfs.join("etc/added"), b"added in layer 2\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image"])
        .arg(format!("{}:img", layout.display()))
        .arg(&bundle));
    layout
}

/// Pushes `<layout>:<tag>` to `docker://<host>/<repo_tag>` with skopeo.
pub fn skopeo_push(layout: &Path, tag: &str, host: &str, repo_tag: &str) {
    run(Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{host}/{repo_tag}")));
}
