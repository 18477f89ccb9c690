//! A throwaway `containerd` daemon rooted in a temporary directory, killed on drop, and
//! [`Containerd::ctr`] to drive it: the reader and writer the interop tests check against.
//!
//! The CRI plugin and the snapshotters the tests do not use are disabled, so the daemon needs
//! nothing outside its directory. It needs root (as `containerd` always does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A running containerd with its root, state and sockets under one temporary directory.
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Starts `containerd --config <tmp>/config.toml` and waits until `ctr version` answers.
    pub fn start() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let d = dir.path();
        for sub in ["root", "state", "opt"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| Error::io("mkdir", e))?;
        }
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\n  \"io.containerd.grpc.v1.cri\",\n  \
             \"io.containerd.snapshotter.v1.aufs\",\n  \"io.containerd.snapshotter.v1.btrfs\",\n  \
             \"io.containerd.snapshotter.v1.devmapper\",\n  \"io.containerd.snapshotter.v1.zfs\",\n  \
             \"io.containerd.tracing.processor.v1.otlp\",\n  \"io.containerd.internal.v1.tracing\",\n]\n\n\
             [grpc]\n  address = \"{sock}\"\n\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\n\
             [debug]\n  address = \"{debug}\"\n\n[metrics]\n  address = \"\"\n\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            debug = d.join("debug.sock").display(),
            opt = d.join("opt").display(),
        );
        let cfg = d.join("config.toml");
        std::fs::write(&cfg, config).map_err(|e| Error::io("writing config.toml", e))?;
        let log = std::fs::File::create(d.join("containerd.log"))
            .map_err(|e| Error::io("containerd.log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("containerd.log", e))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| Error::io("spawning containerd", e))?;
        let mut c = Containerd { child, dir };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = c.child.try_wait() {
                return Err(Error::tool(
                    "containerd",
                    format!("exited with {status}: {}", c.log().trim()),
                ));
            }
            if c.socket().exists()
                && c.ctr(["version"])
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            {
                return Ok(c);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(Error::tool(
                    "containerd",
                    format!("did not answer in 30 s: {}", c.log().trim()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The daemon's directory (root, state, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ctr --address <socket> <args>` and returns its output, whatever its status.
    pub fn ctr<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running ctr", e))
    }

    /// Runs `ctr` and returns its stdout; a failing status is an error carrying stderr.
    pub fn ctr_ok<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.ctr(args)?;
        if !out.status.success() {
            return Err(Error::tool(
                "ctr",
                format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Unmount whatever the daemon left mounted below its directory, deepest first.
        let dir = self.dir.path().to_string_lossy().into_owned();
        if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(1))
                .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
                .collect();
            points.sort_unstable_by(|a, b| b.cmp(a));
            for m in points {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
    }
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_starts_and_ctr_talks_to_it() {
        let c = Containerd::start().expect("containerd starts");
        let out = c.ctr_ok(["images", "ls", "-q"]).expect("ctr images ls");
        assert_eq!(out.trim(), "", "a fresh containerd has no images");
    }
}
