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
        // Reaped below by `wait4`, which std's `Child::wait` cannot replace (no rusage).
        #[allow(clippy::zombie_processes)]
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

    /// How many committed or active snapshots the native and overlay snapshotters hold.
    pub fn snapshot_count(&self) -> usize {
        // A pull picks overlay where it works, else native: count both.
        ["native", "overlay"]
            .iter()
            .map(|s| {
                let dir = self.root.path().join("snapshots").join(s).join("snapshots");
                std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
            })
            .sum()
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

/// How a bounded `dist` run ended: see [`Dist::run_bounded`].
#[derive(Debug)]
pub struct Finished {
    /// The exit code, `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Whether the harness killed it at the deadline.
    pub killed: bool,
    /// The first [`KEEP`] bytes of stdout.
    pub stdout: Vec<u8>,
    /// The first [`KEEP`] bytes of stderr.
    pub stderr: Vec<u8>,
    /// How many bytes stderr held in all.
    pub stderr_len: u64,
    /// Peak resident set of the `dist` process, in KiB: `ru_maxrss` from `wait4` where
    /// that is exact, else the highest `VmHWM` polled (see [`Dist::run_bounded`]).
    pub max_rss_kib: u64,
    /// Wall time from spawn to exit.
    pub elapsed: std::time::Duration,
}

/// How much of each output stream a bounded run keeps.
pub const KEEP: usize = 64 << 10;

impl Finished {
    /// stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Reads `pipe` to its end, keeping the first [`KEEP`] bytes and counting the rest.
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0; 64 << 10];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
            let room = KEEP.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buf[..room]);
        }
        (kept, total)
    })
}

/// `VmHWM` (peak RSS of the current address space) of `pid` in KiB, if readable.
pub fn vm_hwm_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits for `pid` with `wait4`, polling until `deadline` and then killing it; returns
/// `(wait status, rusage.ru_maxrss in KiB, highest VmHWM polled in KiB, killed)`.
#[allow(unsafe_code)]
fn wait4_with_deadline(pid: libc::pid_t, deadline: std::time::Instant) -> (i32, u64, u64, bool) {
    let mut killed = false;
    let mut polled = 0;
    loop {
        if let Some(hwm) = vm_hwm_kib(&pid.to_string()) {
            polled = polled.max(hwm);
        }
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let flags = if killed { 0 } else { libc::WNOHANG };
        // SAFETY: `pid` is our own unreaped child; both out-pointers are valid locals.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            let maxrss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
            return (status, maxrss, polled, killed);
        }
        assert!(
            r == 0 || killed,
            "wait4({pid}) failed: {}",
            std::io::Error::last_os_error()
        );
        if std::time::Instant::now() >= deadline && !killed {
            // SAFETY: signalling our own unreaped child by pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

impl Dist {
    /// Runs `dist args...` with extra environment `env`, killing it after `deadline`;
    /// measures its peak RSS. Output is kept bounded.
    ///
    /// Linux carries the parent's RSS high-water mark into `ru_maxrss` across `execve`
    /// (`exec_mmap` folds the old address space's peak in), so `wait4` reports
    /// max(this test process's peak at spawn, dist's peak). When that exceeds our own
    /// `VmHWM` read after dist exited (monotonic, so at least what dist inherited), it
    /// is dist's own peak, exactly; otherwise `VmHWM` of dist's address space, polled
    /// every 5 ms, stands in (it can only miss a peak in dist's last 5 ms).
    pub fn run_bounded(
        &self,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
        deadline: std::time::Duration,
    ) -> Finished {
        let mut cmd = self.cmd();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // No credentials but the test's own, whatever the machine has.
        if !env.iter().any(|(k, _)| *k == "DOCKER_CONFIG") {
            cmd.env("DOCKER_CONFIG", self.root.path().join("no-docker-config"));
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = std::time::Instant::now();
        // Reaped below by `wait4`, which std's `Child::wait` cannot replace (no rusage).
        #[allow(clippy::zombie_processes)]
        let mut child = cmd.spawn().expect("spawn dist");
        let out = drain(child.stdout.take().expect("stdout pipe"));
        let err = drain(child.stderr.take().expect("stderr pipe"));
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let (status, maxrss, polled, killed) = wait4_with_deadline(pid, start + deadline);
        let own_peak = vm_hwm_kib("self").unwrap_or(u64::MAX);
        let max_rss_kib = if maxrss > own_peak { maxrss } else { polled };
        let elapsed = start.elapsed();
        let (stdout, _) = out.join().expect("stdout reader");
        let (stderr, stderr_len) = err.join().expect("stderr reader");
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        Finished {
            code,
            killed,
            stdout,
            stderr,
            stderr_len,
            max_rss_kib,
            elapsed,
        }
    }

    /// Every committed blob as `(path, size)`, each checked to hash to its name
    /// (`<root>/content/blobs/<alg>/<hex>`): nothing corrupt is committed.
    pub fn verified_blobs(&self) -> Vec<(PathBuf, u64)> {
        let blobs = self.root.path().join("content/blobs");
        let mut found = Vec::new();
        let Ok(algs) = std::fs::read_dir(&blobs) else {
            return found;
        };
        for alg in algs {
            let alg = alg.unwrap();
            let name = alg.file_name().to_string_lossy().into_owned();
            for blob in std::fs::read_dir(alg.path()).unwrap() {
                let path = blob.unwrap().path();
                let hex_name = path.file_name().unwrap().to_string_lossy().into_owned();
                let named = dist::oci_spec::image::Digest::try_from(format!("{name}:{hex_name}"))
                    .unwrap_or_else(|e| panic!("{}: not a digest: {e}", path.display()));
                let mut hasher = dist::content::Digester::for_digest(&named).unwrap();
                let mut file = std::fs::File::open(&path).unwrap();
                let size = std::io::copy(&mut file, &mut hasher).unwrap();
                assert_eq!(
                    hasher.finish(),
                    named,
                    "committed blob {} does not hash to its name",
                    path.display()
                );
                found.push((path, size));
            }
        }
        found
    }

    /// Bytes in regular files anywhere under the root.
    pub fn root_bytes(&self) -> u64 {
        let mut total = 0;
        let mut stack = vec![self.root.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() {
                    total += meta.len();
                }
            }
        }
        total
    }
}

/// The bounds every hostile case is held to.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes the registry served honestly: the most the content store may hold.
    pub legit: u64,
    /// Extra bytes the root may hold beyond `legit` (unpacked files, metadata, partial
    /// ingests of legitimate size).
    pub slack: u64,
    /// The wall-clock budget for the whole run.
    pub budget: std::time::Duration,
}

/// Peak RSS a `dist` process may reach against any hostile input.
pub const MAX_RSS_KIB: u64 = 64 << 10;
/// The longest error line `dist` may print.
pub const MAX_ERROR_LINE: usize = 1024;

/// Asserts what holds for every hostile case, success or failure: `dist` ended on its own
/// within the budget, without a panic, under [`MAX_RSS_KIB`]; a failure is exactly one
/// bounded `error:` line; the store holds only verified blobs, no more than `legit`
/// bytes of them, and the root no more than `legit + slack` bytes. Returns whether the
/// run succeeded.
pub fn assert_contained(case: &str, dist: &Dist, f: &Finished, bounds: Bounds) -> bool {
    let stderr = f.stderr_text();
    assert!(
        !f.killed,
        "{case}: dist still running after {:?}; stderr:\n{}",
        bounds.budget,
        elide(&stderr)
    );
    assert!(
        f.elapsed <= bounds.budget,
        "{case}: took {:?} (budget {:?})",
        f.elapsed,
        bounds.budget
    );
    assert!(
        !stderr.contains("panicked") && f.code.is_some(),
        "{case}: dist crashed ({:?}):\n{}",
        f.code,
        elide(&stderr)
    );
    assert!(
        f.max_rss_kib < MAX_RSS_KIB,
        "{case}: peak RSS {} KiB (limit {MAX_RSS_KIB} KiB)",
        f.max_rss_kib
    );
    let ok = f.code == Some(0);
    if !ok {
        assert!(
            f.stderr_len < 16 << 10,
            "{case}: {} bytes of stderr:\n{}",
            f.stderr_len,
            elide(&stderr)
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors.len(),
            1,
            "{case}: want one error line:\n{}",
            elide(&stderr)
        );
        assert!(
            errors[0].len() < MAX_ERROR_LINE,
            "{case}: error line of {} bytes: {}",
            errors[0].len(),
            elide(errors[0])
        );
        assert_eq!(
            stderr.lines().last(),
            Some(errors[0]),
            "{case}: the error is not the last line:\n{}",
            elide(&stderr)
        );
    }
    let stored: u64 = dist.verified_blobs().iter().map(|(_, n)| n).sum();
    assert!(
        stored <= bounds.legit,
        "{case}: {stored} bytes of blobs committed, only {} legitimate",
        bounds.legit
    );
    let total = dist.root_bytes();
    assert!(
        total <= bounds.legit + bounds.slack,
        "{case}: the root holds {total} bytes, over {} legitimate + {} slack",
        bounds.legit,
        bounds.slack
    );
    ok
}

/// The first 512 bytes of `s`, for assertion messages.
pub fn elide(s: &str) -> String {
    if s.len() <= 512 {
        return s.to_string();
    }
    let mut end = 512;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &s[..end], s.len())
}

/// `dist --timeout 2s pull <reference>` against hostile servers, in a fresh root, checked
/// with [`assert_contained`]; returns the root, the run and whether it succeeded.
pub fn pull_contained(
    case: &str,
    reference: &str,
    env: &[(&str, &std::ffi::OsStr)],
    bounds: Bounds,
) -> (Dist, Finished, bool) {
    let dist = Dist::new();
    let f = dist.run_bounded(&["--timeout", "2s", "pull", reference], env, bounds.budget);
    let ok = assert_contained(case, &dist, &f, bounds);
    (dist, f, ok)
}

/// A descriptor as JSON, with whatever digest and size a hostile case needs.
pub fn desc_json(media_type: &str, digest: &str, size: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size })
}

/// An OCI image manifest as JSON bytes, from descriptor values.
pub fn manifest_bytes(config: serde_json::Value, layers: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": dist_test_support::OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }))
    .unwrap()
}

/// An OCI index as JSON bytes, from descriptor values.
pub fn index_bytes(manifests: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": dist_test_support::OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

/// A `DOCKER_CONFIG` directory (inside the root's parent temp dir `dir`) whose
/// `config.json` holds `user:secret` for `host`; returns the directory.
pub fn docker_config(dir: &Path, host: &str, user: &str, secret: &str) -> PathBuf {
    use std::io::Write as _;
    let cfg = dir.join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let auth = base64_encode(format!("{user}:{secret}").as_bytes());
    let mut f = std::fs::File::create(cfg.join("config.json")).unwrap();
    write!(f, r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#).unwrap();
    cfg
}

/// Standard base64 (with padding), enough for a test's Basic credentials.
pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Dist {
    /// How many committed snapshots the native and overlay snapshotters record (active
    /// extraction snapshots a failed pull leaves for the next one to clean do not count).
    pub fn committed_snapshots(&self) -> usize {
        // A pull picks overlay where it works, else native: count both.
        ["native", "overlay"]
            .iter()
            .filter_map(|s| {
                let dir = self.root.path().join("snapshots").join(s).join("metadata");
                std::fs::read_dir(dir).ok()
            })
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter(|v| {
                v["kind"]
                    .as_str()
                    .is_some_and(|k| k.eq_ignore_ascii_case("committed"))
            })
            .count()
    }
}

/// Runs `check` on every case, even after one fails, then fails naming every case that
/// did (each failure's message is printed as it happens).
pub fn each_case<T: std::fmt::Debug>(cases: impl IntoIterator<Item = T>, check: impl Fn(&T)) {
    let mut failed = Vec::new();
    for case in cases {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&case)));
        if run.is_err() {
            failed.push(format!("{case:?}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} case(s) failed: {}",
        failed.len(),
        elide(&failed.join(", "))
    );
}

/// [`each_case`], with the cases run at once (for cases that mostly wait).
pub fn each_case_at_once<T: std::fmt::Debug + Sync>(cases: &[T], check: impl Fn(&T) + Sync) {
    let failed: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = cases
            .iter()
            .map(|case| (case, s.spawn(|| check(case))))
            .collect();
        runs.into_iter()
            .filter_map(|(case, run)| run.join().is_err().then(|| format!("{case:?}")))
            .collect()
    });
    assert!(
        failed.is_empty(),
        "{} case(s) failed: {}",
        failed.len(),
        elide(&failed.join(", "))
    );
}
