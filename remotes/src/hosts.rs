//! Which endpoints serve a registry host: mirrors, schemes, TLS options, `hosts.toml`.

mod file;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use file::HostsFile;
use file::{parse_hosts_file, read_bounded};

use crate::{Error, Result};

/// The host name Docker Hub references use, and the host that actually serves them.
pub const DOCKER_HUB: &str = "docker.io";
/// The API host behind [`DOCKER_HUB`].
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// How to talk to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// TLS (the default).
    Https,
    /// Plain HTTP: only for hosts the caller names as such (or loopback fallback).
    Http,
}

/// What an endpoint may be used for (containerd's host capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// Fetch content by digest.
    pub pull: bool,
    /// Resolve tags to digests.
    pub resolve: bool,
}

impl Capabilities {
    /// Pull and resolve: what an origin registry offers.
    pub const ALL: Capabilities = Capabilities {
        pull: true,
        resolve: true,
    };
    /// Pull only: a content mirror that cannot be trusted to resolve tags.
    pub const PULL: Capabilities = Capabilities {
        pull: true,
        resolve: false,
    };
}

/// TLS settings for one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Extra PEM CA files trusted in addition to the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Dangerous: accept any certificate. Only for test registries you control.
    pub skip_verify: bool,
}

impl TlsOptions {
    /// Trusts the PEM CA certificates in `path` in addition to the system roots.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_files.push(path.into());
        self
    }

    /// Dangerous: accepts any certificate. Only for test registries you control.
    pub fn with_skip_verify(mut self, skip: bool) -> Self {
        self.skip_verify = skip;
        self
    }
}

/// One endpoint serving a registry host's content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryHost {
    /// `host[:port]` to connect to.
    pub host: String,
    /// HTTPS or plain HTTP.
    pub scheme: Scheme,
    /// The API prefix, normally `/v2`.
    pub path: String,
    /// What this endpoint may be used for.
    pub capabilities: Capabilities,
    /// TLS options (ignored for plain HTTP).
    pub tls: TlsOptions,
    /// Retry over plain HTTP when HTTPS cannot connect (Docker's behaviour for loopback).
    pub plain_http_fallback: bool,
    /// Push blobs to this endpoint in `PATCH` chunks of this many bytes (`hosts.toml`'s
    /// `upload_chunk_size`), overriding [`UploadOptions::chunk_size`](crate::UploadOptions).
    pub upload_chunk_size: Option<u64>,
}

impl RegistryHost {
    /// An HTTPS origin endpoint for `host` with every capability.
    pub fn new(host: impl Into<String>) -> Self {
        RegistryHost {
            host: host.into(),
            scheme: Scheme::Https,
            path: "/v2".to_string(),
            capabilities: Capabilities::ALL,
            tls: TlsOptions::default(),
            plain_http_fallback: false,
            upload_chunk_size: None,
        }
    }

    /// Sets the scheme.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Sets the capabilities.
    pub fn with_capabilities(mut self, caps: Capabilities) -> Self {
        self.capabilities = caps;
        self
    }

    /// Sets the TLS options.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the API prefix (normally `/v2`).
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Retries over plain HTTP when HTTPS cannot connect.
    pub fn with_plain_http_fallback(mut self, on: bool) -> Self {
        self.plain_http_fallback = on;
        self
    }

    /// Pushes blobs to this endpoint in chunks of `bytes` (at least 1).
    pub fn with_upload_chunk_size(mut self, bytes: u64) -> Self {
        self.upload_chunk_size = Some(bytes.max(1));
        self
    }
}

/// Where the endpoints of each registry host come from.
///
/// Without configuration a host is served by itself over HTTPS (`docker.io` by
/// `registry-1.docker.io`); loopback hosts fall back to plain HTTP when HTTPS cannot connect.
/// Hosts listed with [`with_plain_http`](HostsConfig::with_plain_http) use plain HTTP.
/// With [`with_config_dir`](HostsConfig::with_config_dir), containerd's
/// `<dir>/<host>/hosts.toml` files add mirrors and TLS options.
///
/// Files are read when the configuration is built, never per request:
/// [`hosts`](HostsConfig::hosts) does no I/O, so a resolver can call it on a runtime worker.
#[derive(Debug, Clone, Default)]
pub struct HostsConfig {
    /// Parsed `hosts.toml` files by namespace (`docker.io`, `host_5000_`, `_default`), or
    /// why one could not be used.
    files: Arc<HashMap<String, std::result::Result<HostsFile, FileError>>>,
    /// Why the configuration directory itself could not be read.
    dir_error: Option<FileError>,
    plain_http: Vec<String>,
    explicit: HashMap<String, Vec<RegistryHost>>,
}

/// A configuration file problem, kept to be reported for the hosts it concerns.
#[derive(Debug, Clone)]
struct FileError {
    path: String,
    reason: String,
    /// Shared by every host the file configures, each of which reports it.
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl FileError {
    fn new(path: String, problem: file::Problem) -> Self {
        FileError {
            path,
            reason: problem.reason,
            source: problem.source.map(Arc::from),
        }
    }
}

impl From<&FileError> for Error {
    fn from(e: &FileError) -> Self {
        let source = e
            .source
            .clone()
            .map(|s| Box::new(crate::error::Shared(s)) as crate::error::Source);
        Error::config(e.path.clone(), e.reason.clone(), source)
    }
}

impl HostsConfig {
    /// The default: every host serves itself over HTTPS.
    pub fn new() -> Self {
        HostsConfig::default()
    }

    /// Reads every `<dir>/<namespace>/hosts.toml` now, once, on the calling thread (on a
    /// runtime, use [`with_config_dir_async`](HostsConfig::with_config_dir_async)), in
    /// containerd's `certs.d` layout: `<host>`, `<name>_<port>_` for a host with a port,
    /// and `_default` for any other host. Later edits need a new `HostsConfig` (and
    /// resolver).
    ///
    /// A missing directory means no files. A file that cannot be read or parsed (or a
    /// directory that cannot be listed) is reported by [`hosts`](HostsConfig::hosts) for
    /// the hosts it would configure, so one broken file does not stop pulls from others.
    pub fn with_config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let mut files = HashMap::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let Ok(name) = entry.file_name().into_string() else {
                        continue;
                    };
                    let path = entry.path().join("hosts.toml");
                    let loaded = match read_bounded(&path) {
                        Ok(None) => continue,
                        Ok(Some(text)) => parse_hosts_file(&text, &path),
                        Err(problem) => Err(problem),
                    };
                    let loaded = loaded.map_err(|p| FileError::new(path.display().to_string(), p));
                    files.insert(name, loaded);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                self.dir_error = Some(FileError {
                    path: dir.display().to_string(),
                    reason: e.to_string(),
                    source: Some(Arc::new(e)),
                });
            }
        }
        self.files = Arc::new(files);
        self
    }

    /// [`with_config_dir`](HostsConfig::with_config_dir) on a blocking thread, so a
    /// runtime worker never waits on the file system.
    pub async fn with_config_dir_async(self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let mut unloaded = self.clone();
        let context = dir.display().to_string();
        match tokio::task::spawn_blocking(move || self.with_config_dir(dir)).await {
            Ok(loaded) => loaded,
            // Only a runtime shutting down cancels the task; report it per host.
            Err(e) => {
                unloaded.dir_error = Some(FileError {
                    path: context,
                    reason: format!("not loaded: {e}"),
                    source: Some(Arc::new(e)),
                });
                unloaded
            }
        }
    }

    /// Uses a parsed `hosts.toml` for `namespace` (a host, `<name>_<port>_`, or
    /// `_default`), replacing any file read from a directory.
    pub fn with_hosts_file(mut self, namespace: impl Into<String>, file: HostsFile) -> Self {
        Arc::make_mut(&mut self.files).insert(namespace.into(), Ok(file));
        self
    }

    /// Talks plain HTTP to `host` (`host[:port]`). Credentials are sent to it, since the
    /// caller named it; this includes a token server (`realm`) on plain HTTP, which
    /// otherwise only gets anonymous token requests.
    pub fn with_plain_http(mut self, host: impl Into<String>) -> Self {
        self.plain_http.push(host.into());
        self
    }

    /// Uses exactly `endpoints` (in order) for `host`, overriding any file.
    pub fn with_hosts(mut self, host: impl Into<String>, endpoints: Vec<RegistryHost>) -> Self {
        self.explicit.insert(host.into(), endpoints);
        self
    }

    /// The endpoints for `host`, mirrors first and the origin last. Does no I/O.
    pub fn hosts(&self, host: &str) -> Result<Vec<RegistryHost>> {
        if let Some(list) = self.explicit.get(host) {
            return Ok(list.clone());
        }
        let origin = self.origin(host);
        for name in namespaces(host) {
            match self.files.get(&name) {
                Some(Ok(file)) => return Ok(file.endpoints(origin)),
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        if let Some(e) = &self.dir_error {
            return Err(e.into());
        }
        Ok(vec![origin])
    }

    /// Whether the caller named `host` as plain HTTP (credentials may go to it unencrypted).
    pub(crate) fn is_plain_http(&self, host: &str) -> bool {
        self.plain_http.iter().any(|p| p == host)
    }

    fn origin(&self, host: &str) -> RegistryHost {
        let api = if host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            host
        };
        let mut h = RegistryHost::new(api);
        if self.plain_http.iter().any(|p| p == host || p == api) {
            h.scheme = Scheme::Http;
        } else if is_loopback(host) {
            h.plain_http_fallback = true;
        }
        h
    }
}

/// The directory names that may configure `host`, in containerd's order.
fn namespaces(host: &str) -> Vec<String> {
    let mut names = Vec::with_capacity(3);
    if let Some((name, port)) = host.rsplit_once(':')
        && !name.is_empty()
    {
        names.push(format!("{name}_{port}_"));
    }
    names.push(host.to_string());
    names.push("_default".to_string());
    names
}

/// Whether `host[:port]` names the local machine.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_tls_builders_set_what_they_name() {
        let tls = TlsOptions::default()
            .with_ca_file("/etc/ca-a.pem")
            .with_ca_file("/etc/ca-b.pem")
            .with_skip_verify(true);
        assert_eq!(
            tls.ca_files,
            vec![
                PathBuf::from("/etc/ca-a.pem"),
                PathBuf::from("/etc/ca-b.pem")
            ]
        );
        assert!(tls.skip_verify);
        let host = RegistryHost::new("mirror.example:5000")
            .with_path("/registry/v2")
            .with_plain_http_fallback(true)
            .with_tls(tls.clone());
        assert_eq!(host.path, "/registry/v2");
        assert!(host.plain_http_fallback);
        assert_eq!(host.tls, tls);
        assert_eq!(
            host.scheme,
            Scheme::Https,
            "other fields keep their defaults"
        );
    }

    #[test]
    fn docker_hub_is_served_by_registry_1() {
        let hosts = HostsConfig::new().hosts("docker.io").unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].host, "registry-1.docker.io");
        assert_eq!(hosts[0].scheme, Scheme::Https);
        assert!(!hosts[0].plain_http_fallback);
    }

    #[test]
    fn loopback_hosts_may_fall_back_to_plain_http() {
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "127.0.0.1",
        ] {
            assert!(is_loopback(h), "{h}");
            assert!(HostsConfig::new().hosts(h).unwrap()[0].plain_http_fallback);
        }
        assert!(!is_loopback("example.com:5000"));
        let h = HostsConfig::new()
            .with_plain_http("reg:80")
            .hosts("reg:80")
            .unwrap();
        assert_eq!(h[0].scheme, Scheme::Http);
    }

    #[test]
    fn hosts_toml_lists_mirrors_in_file_order_then_server() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("docker.io");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("hosts.toml"),
            r#"
server = "https://registry-1.docker.io"

[host."https://z-mirror.example.com"]
  capabilities = ["pull", "resolve"]
  ca = "mirror-ca.pem"

[host."http://a-mirror.local:5000/prefix"]
  capabilities = ["pull"]
  skip_verify = true
"#,
        )
        .unwrap();
        let hosts = HostsConfig::new()
            .with_config_dir(dir.path())
            .hosts("docker.io")
            .unwrap();
        let names: Vec<_> = hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(
            names,
            [
                "z-mirror.example.com",
                "a-mirror.local:5000",
                "registry-1.docker.io"
            ]
        );
        assert_eq!(hosts[0].capabilities, Capabilities::ALL);
        assert_eq!(hosts[0].tls.ca_files, vec![d.join("mirror-ca.pem")]);
        assert_eq!(hosts[1].scheme, Scheme::Http);
        assert_eq!(hosts[1].path, "/prefix/v2");
        assert_eq!(hosts[1].capabilities, Capabilities::PULL);
        assert!(hosts[1].tls.skip_verify);
        assert_eq!(hosts[2].capabilities, Capabilities::ALL);
    }

    #[test]
    fn upload_chunk_size_in_hosts_toml_applies_to_its_endpoint() {
        let path = std::path::Path::new("/etc/containerd/certs.d/r.example/hosts.toml");
        let file = HostsFile::parse(
            r#"
server = "https://r.example"
upload_chunk_size = 8388608

[host."https://mirror.example"]
  capabilities = ["pull"]
"#,
            path,
        )
        .unwrap();
        let hosts = file.endpoints(RegistryHost::new("r.example"));
        assert_eq!(hosts[0].upload_chunk_size, None);
        assert_eq!(hosts[1].upload_chunk_size, Some(8 * 1024 * 1024));
        let zero = HostsFile::parse("upload_chunk_size = 0", path).unwrap_err();
        assert!(zero.to_string().contains("upload_chunk_size"), "{zero}");
        let negative = HostsFile::parse("upload_chunk_size = -1", path);
        assert!(negative.is_err());
    }

    #[test]
    fn malformed_hosts_toml_is_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("r.example");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("hosts.toml"), "server = [").unwrap();
        let err = HostsConfig::new()
            .with_config_dir(dir.path())
            .hosts("r.example")
            .unwrap_err();
        assert!(err.to_string().contains("hosts.toml"), "{err}");
    }
}
