//! A real `docker-registry` (distribution 2.8) on loopback, killed on drop.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::run;
use crate::token::{ISSUER, SERVICE, TokenIssuer};
use crate::{Error, Result};

/// The user name every authenticated mode accepts.
pub const USERNAME: &str = "dist-tester";
/// The password for [`USERNAME`].
pub const PASSWORD: &str = "correct horse battery";

/// How the registry authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone may push and pull.
    None,
    /// HTTP Basic against a bcrypt `htpasswd` file.
    Htpasswd,
    /// Bearer tokens from an in-process [`TokenIssuer`].
    Token,
}

/// A running registry with its own storage directory.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    mode: AuthMode,
    token: Option<TokenIssuer>,
}

impl Registry {
    /// Starts `/usr/bin/docker-registry` on `127.0.0.1` with an ephemeral port and waits
    /// until `/v2/` answers. A port taken between choosing and binding it is retried.
    pub fn start(mode: AuthMode) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let token = match mode {
            AuthMode::Token => Some(TokenIssuer::start(USERNAME, PASSWORD, 300)?),
            _ => None,
        };
        if mode == AuthMode::Htpasswd {
            let line = run(Command::new("htpasswd").args(["-Bbn", USERNAME, PASSWORD]))?;
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, line).map_err(|e| Error::io("writing htpasswd", e))?;
        }
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(
                &cfg_path,
                config_yaml(dir.path(), port, mode, token.as_ref()),
            )
            .map_err(|e| Error::io("writing config.yml", e))?;
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).map_err(|e| Error::io("registry.log", e))?;
            let log2 = log.try_clone().map_err(|e| Error::io("registry.log", e))?;
            let mut child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(|e| Error::io("spawning /usr/bin/docker-registry", e))?;
            match wait_until_ready(&mut child, port, &log_path, Duration::from_secs(30)) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        dir,
                        port,
                        mode,
                        token,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::tool("docker-registry", "did not start")))
    }

    /// `127.0.0.1:<port>`, the host part of references to this registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The authentication mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The token issuer, in [`AuthMode::Token`].
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.token.as_ref()
    }

    /// `user:password` for tools, when the mode needs credentials.
    pub fn creds(&self) -> Option<String> {
        (self.mode != AuthMode::None).then(|| format!("{USERNAME}:{PASSWORD}"))
    }

    /// Copies `layout_dir`'s image tagged `layout_tag` to `<this registry>/<repo_tag>`
    /// with `skopeo copy`. `v2s2` converts to Docker schema 2 media types; `all` copies
    /// every manifest of an index.
    pub fn push(
        &self,
        layout_dir: &Path,
        layout_tag: &str,
        repo_tag: &str,
        v2s2: bool,
        all: bool,
    ) -> Result<()> {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if v2s2 {
            cmd.args(["--format", "v2s2"]);
        }
        if all {
            cmd.arg("--all");
        }
        if let Some(c) = self.creds() {
            cmd.arg("--dest-creds").arg(c);
        }
        cmd.arg(format!("oci:{}:{layout_tag}", layout_dir.display()));
        cmd.arg(format!("docker://{}/{repo_tag}", self.host()));
        run(&mut cmd).map(|_| ())
    }

    /// The raw manifest bytes `skopeo inspect --raw` prints for `<this registry>/<reference>`.
    pub fn inspect_raw(&self, reference: &str) -> Result<Vec<u8>> {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "inspect",
            "--raw",
            "--tls-verify=false",
        ]);
        if let Some(c) = self.creds() {
            cmd.arg("--creds").arg(c);
        }
        cmd.arg(format!("docker://{}/{reference}", self.host()));
        run(&mut cmd)
    }

    /// The registry's log so far (for test failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Binds `127.0.0.1:0` and releases it, for a process that needs a port number up front.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind :0", e))?;
    let port = l
        .local_addr()
        .map_err(|e| Error::io("local_addr", e))?
        .port();
    Ok(port)
}

fn config_yaml(dir: &Path, port: u16, mode: AuthMode, token: Option<&TokenIssuer>) -> String {
    let mut s = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: dist-test-secret\n",
        dir.join("data").display()
    );
    match (mode, token) {
        (AuthMode::Htpasswd, _) => s.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: dist-test\n    path: {}\n",
            dir.join("htpasswd").display()
        )),
        (AuthMode::Token, Some(t)) => s.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
             rootcertbundle: {}\n",
            t.realm(),
            t.cert_path().display()
        )),
        _ => {}
    }
    s
}

/// Polls `GET /v2/` until it answers (any status), the child exits, or time runs out.
fn wait_until_ready(child: &mut Child, port: u16, log: &Path, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(Error::tool(
                "docker-registry",
                format!("exited with {status}: {}", log.trim()),
            ));
        }
        if probe(port).is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::tool(
        "docker-registry",
        "did not answer /v2/ in time",
    ))
}

fn probe(port: u16) -> Option<()> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).ok()?;
    buf.starts_with(b"HTTP/1.").then_some(())
}
