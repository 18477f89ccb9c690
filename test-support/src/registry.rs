//! A real `docker-registry` (distribution 2.8) on loopback, killed on drop.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::AccessLog;
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

/// How [`Registry::push`] copies an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Push {
    /// Convert to Docker schema 2 media types (`skopeo copy --format v2s2`).
    pub docker_v2s2: bool,
    /// Copy every manifest of an index (`--all`), not just the host platform's.
    pub all: bool,
}

impl Push {
    /// Keep OCI media types, copy one image (the default).
    pub fn oci() -> Self {
        Push::default()
    }

    /// Convert to Docker schema 2.
    pub fn docker_v2s2(mut self) -> Self {
        self.docker_v2s2 = true;
        self
    }

    /// Copy all manifests of an index.
    pub fn all(mut self) -> Self {
        self.all = true;
        self
    }
}

/// A running registry with its own storage directory.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    mode: AuthMode,
    token: Option<TokenIssuer>,
    tls: bool,
    access_log: bool,
}

impl Registry {
    /// Starts `/usr/bin/docker-registry` on `127.0.0.1` with an ephemeral port and waits
    /// until `/v2/` answers. A port taken between choosing and binding it is retried.
    pub fn start(mode: AuthMode) -> Result<Self> {
        Self::start_with(mode, false, false)
    }

    /// Like [`start`](Registry::start), with the registry's access log on, so that a test
    /// can count what clients sent ([`access_log`](Registry::access_log)).
    pub fn start_with_access_log(mode: AuthMode) -> Result<Self> {
        Self::start_with(mode, false, true)
    }

    /// Like [`start`](Registry::start), but serving HTTPS with a fresh self-signed
    /// certificate for `127.0.0.1` (see [`ca_cert`](Registry::ca_cert)).
    pub fn start_tls(mode: AuthMode) -> Result<Self> {
        Self::start_with(mode, true, false)
    }

    fn start_with(mode: AuthMode, tls: bool, access_log: bool) -> Result<Self> {
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
        if tls {
            make_tls_certs(dir.path())?;
        }
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(
                &cfg_path,
                config_yaml(dir.path(), port, mode, token.as_ref(), tls, access_log),
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
            match wait_until_ready(&mut child, port, &log_path, tls, Duration::from_secs(30)) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        dir,
                        port,
                        mode,
                        token,
                        tls,
                        access_log,
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

    /// The PEM certificate a client must trust for a registry started with
    /// [`start_tls`](Registry::start_tls).
    pub fn ca_cert(&self) -> Option<std::path::PathBuf> {
        self.tls.then(|| self.dir.path().join("ca.crt"))
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
    /// with `skopeo copy` (with this registry's credentials).
    pub fn push(
        &self,
        layout_dir: &Path,
        layout_tag: &str,
        repo_tag: &str,
        how: Push,
    ) -> Result<()> {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if how.docker_v2s2 {
            cmd.args(["--format", "v2s2"]);
        }
        if how.all {
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

    /// The requests logged so far, for a registry started with
    /// [`start_with_access_log`](Registry::start_with_access_log) (empty otherwise).
    pub fn access_log(&self) -> AccessLog {
        if !self.access_log {
            return AccessLog::default();
        }
        AccessLog::parse(&self.log(), &self.dir.path().join("data"))
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

/// A throw-away CA (`ca.crt`) and a server certificate for `127.0.0.1` signed by it
/// (`tls.crt`, `tls.key`) in `dir`.
fn make_tls_certs(dir: &Path) -> Result<()> {
    let p = |name: &str| dir.join(name);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=dist-test-ca", "-keyout"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")))?;
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ])
        .arg(p("tls.key"))
        .arg("-out")
        .arg(p("tls.csr")))?;
    std::fs::write(
        p("tls.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| Error::io("tls.ext", e))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(p("tls.csr"))
        .arg("-CA")
        .arg(p("ca.crt"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("tls.ext"))
        .arg("-out")
        .arg(p("tls.crt")))?;
    Ok(())
}

/// Binds `127.0.0.1:0` and releases it, for a process that needs a port number up front.
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind :0", e))?;
    let port = l
        .local_addr()
        .map_err(|e| Error::io("local_addr", e))?
        .port();
    Ok(port)
}

fn config_yaml(
    dir: &Path,
    port: u16,
    mode: AuthMode,
    token: Option<&TokenIssuer>,
    tls: bool,
    access_log: bool,
) -> String {
    let mut s = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: {}\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: dist-test-secret\n",
        !access_log,
        dir.join("data").display()
    );
    if tls {
        s.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("tls.crt").display(),
            dir.join("tls.key").display()
        ));
    }
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
fn wait_until_ready(
    child: &mut Child,
    port: u16,
    log: &Path,
    tls: bool,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(Error::tool(
                "docker-registry",
                format!("exited with {status}: {}", log.trim()),
            ));
        }
        // A TLS registry cannot be spoken to in plain text; accepting connections is enough.
        let up = if tls {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        } else {
            probe(port).is_some()
        };
        if up {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::tool(
        "docker-registry",
        "did not answer /v2/ in time",
    ))
}

pub(crate) fn probe(port: u16) -> Option<()> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).ok()?;
    buf.starts_with(b"HTTP/1.").then_some(())
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("port", &self.port)
            .field("mode", &self.mode)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}
