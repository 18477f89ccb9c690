//! A real `ferro-oci-server` (an independent OCI 1.1 registry from crates.io) on loopback,
//! killed on drop.
//!
//! It is the second registry the push, discovery and referrers tests run against: it
//! answers the referrers API, chunked uploads with `Range` and `Link` pagination the way the
//! OCI distribution spec describes, where `docker-registry` 2.8 differs. It has no auth and
//! does not delete tags. `scripts/install-deps.sh` installs it with
//! `cargo install --locked ferro-oci-server --version 1.0.0`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry::{free_port, probe};
use crate::{Error, Result};

/// A running `ferro-oci-server` with its own storage directory.
pub struct FerroRegistry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// Where the server binary is: `$FERRO_OCI_SERVER`, else `ferro-oci-server` on `PATH`,
/// else `~/.cargo/bin/ferro-oci-server`.
pub fn ferro_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERRO_OCI_SERVER").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("ferro-oci-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/ferro-oci-server");
        p.is_file().then_some(p)
    })
}

impl FerroRegistry {
    /// Starts the server on `127.0.0.1` with an ephemeral port (always through
    /// `FERRO_OCI_LISTEN`: by default it would listen on every interface) and a temporary
    /// storage directory, and waits until `/v2/` answers.
    pub fn start() -> Result<Self> {
        let bin = ferro_binary().ok_or_else(|| {
            Error::tool(
                "ferro-oci-server",
                "not installed (scripts/install-deps.sh installs it)",
            )
        })?;
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let log_path = dir.path().join("ferro.log");
            let log = std::fs::File::create(&log_path).map_err(|e| Error::io("ferro.log", e))?;
            let log2 = log.try_clone().map_err(|e| Error::io("ferro.log", e))?;
            let mut child = Command::new(&bin)
                .env("FERRO_OCI_LISTEN", format!("127.0.0.1:{port}"))
                .env("FERRO_OCI_STORAGE_DIR", dir.path().join("data"))
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| Error::io("spawning ferro-oci-server", e))?;
            let start = Instant::now();
            let outcome = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    break Err(Error::tool(
                        "ferro-oci-server",
                        format!("exited with {status}: {}", log.trim()),
                    ));
                }
                if probe(port).is_some() {
                    break Ok(());
                }
                if start.elapsed() > Duration::from_secs(30) {
                    break Err(Error::tool(
                        "ferro-oci-server",
                        "did not answer /v2/ in 30 s",
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            match outcome {
                Ok(()) => return Ok(FerroRegistry { child, dir, port }),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::tool("ferro-oci-server", "did not start")))
    }

    /// `127.0.0.1:<port>`, the host part of references to this registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's log so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ferro.log")).unwrap_or_default()
    }
}

impl Drop for FerroRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for FerroRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FerroRegistry")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ferro_starts_on_loopback_and_answers_v2() {
        let reg = FerroRegistry::start().expect("ferro-oci-server starts");
        assert!(reg.host().starts_with("127.0.0.1:"));
        let mut s = std::net::TcpStream::connect(reg.host()).expect("connect");
        use std::io::{Read, Write};
        s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}
