//! Which endpoints serve a registry host: mirrors, schemes, TLS options, `hosts.toml`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dist_content::Elided;
use serde::Deserialize;

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
}

impl From<&FileError> for Error {
    fn from(e: &FileError) -> Self {
        Error::Config {
            path: e.path.clone(),
            reason: e.reason.clone(),
        }
    }
}

/// The largest `hosts.toml` read; real ones are a few hundred bytes.
const MAX_HOSTS_FILE: u64 = 1 << 20;

impl HostsConfig {
    /// The default: every host serves itself over HTTPS.
    pub fn new() -> Self {
        HostsConfig::default()
    }

    /// Reads every `<dir>/<namespace>/hosts.toml` now, once (containerd's `certs.d`
    /// layout): `<host>`, `<name>_<port>_` for a host with a port, and `_default` for any
    /// other host. Later edits need a new `HostsConfig` (and resolver).
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
                        Err(reason) => Err(reason),
                    };
                    let loaded = loaded.map_err(|reason| FileError {
                        path: path.display().to_string(),
                        reason,
                    });
                    files.insert(name, loaded);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                self.dir_error = Some(FileError {
                    path: dir.display().to_string(),
                    reason: e.to_string(),
                });
            }
        }
        self.files = Arc::new(files);
        self
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

/// The text of `path`, `None` when it does not exist, or why it cannot be read.
fn read_bounded(path: &Path) -> std::result::Result<Option<String>, String> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut text = String::new();
    file.take(MAX_HOSTS_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_HOSTS_FILE {
        return Err("larger than 1 MiB".to_string());
    }
    Ok(Some(text))
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

/// One parsed containerd `hosts.toml`: mirrors (`[host."<url>"]` tables, in file order)
/// and the `server` with the top-level settings.
///
/// Parsed with the `toml` crate, so any valid TOML works: comments after headers, spaces
/// inside brackets, inline `host."<url>" = { ... }` tables. Fields are containerd's:
/// `server`, `capabilities` (`pull`, `resolve`; `push` and `referrers` are accepted and
/// ignored), `ca` (a path or a list, relative to the file's directory), `skip_verify` and
/// `override_path`. Fields this library does not use (`client`, `header`, `dial_timeout`)
/// are ignored. Unlike containerd, a mirror without `capabilities` may only pull: resolving
/// tags must be granted explicitly.
///
/// ```
/// use std::path::Path;
/// use dist_remotes::{HostsFile, RegistryHost};
///
/// let file = HostsFile::parse(
///     r#"
/// server = "https://registry-1.docker.io"    # the origin, last
/// [ host."https://mirror.example" ]          # spaces inside the brackets are fine
///   capabilities = ["pull", "resolve"]
/// "#,
///     Path::new("/etc/containerd/certs.d/docker.io/hosts.toml"),
/// )
/// .unwrap();
/// let hosts: Vec<_> = file
///     .endpoints(RegistryHost::new("registry-1.docker.io"))
///     .into_iter()
///     .map(|h| h.host)
///     .collect();
/// assert_eq!(hosts, ["mirror.example", "registry-1.docker.io"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsFile {
    mirrors: Vec<RegistryHost>,
    server: Option<RegistryHost>,
    settings: Settings,
}

impl HostsFile {
    /// Parses the text of a `hosts.toml`. `path` names the file in errors and anchors
    /// relative `ca` paths; nothing is read from disk. Any problem is a
    /// [`Error::Config`]; it never panics, whatever the input.
    pub fn parse(text: &str, path: &Path) -> Result<HostsFile> {
        parse_hosts_file(text, path).map_err(|reason| Error::Config {
            path: path.display().to_string(),
            reason,
        })
    }

    /// The endpoints this file gives a registry whose own endpoint is `origin`: the
    /// mirrors in file order, then `server` (or `origin` when there is none) with the
    /// top-level settings.
    pub fn endpoints(&self, origin: RegistryHost) -> Vec<RegistryHost> {
        let mut out = self.mirrors.clone();
        let mut last = self.server.clone().unwrap_or(origin);
        self.settings.apply(&mut last);
        out.push(last);
        out
    }
}

/// A `hosts.toml` as the `toml` crate reads it.
#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    server: Option<String>,
    #[serde(flatten)]
    fields: RawFields,
    #[serde(default)]
    host: OrderedHosts,
}

/// The settings of one endpoint, as written.
#[derive(Debug, Deserialize, Default)]
struct RawFields {
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    ca: Option<OneOrMany>,
    #[serde(default)]
    skip_verify: Option<bool>,
    #[serde(default)]
    override_path: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The `host` table's entries in file order (the `toml` crate's `preserve_order` keeps
/// the document's order; a `HashMap` would lose it).
#[derive(Default)]
struct OrderedHosts(Vec<(String, RawFields)>);

impl<'de> Deserialize<'de> for OrderedHosts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = OrderedHosts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of host URLs")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<OrderedHosts, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, RawFields>()? {
                    out.push(entry);
                }
                Ok(OrderedHosts(out))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// Validated settings of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Settings {
    capabilities: Option<Capabilities>,
    ca_files: Option<Vec<PathBuf>>,
    skip_verify: Option<bool>,
}

impl Settings {
    fn from_raw(f: &RawFields, base: &Path) -> std::result::Result<Settings, String> {
        let capabilities = match &f.capabilities {
            None => None,
            Some(caps) => {
                let mut c = Capabilities {
                    pull: false,
                    resolve: false,
                };
                for cap in caps {
                    match cap.to_ascii_lowercase().as_str() {
                        "pull" => c.pull = true,
                        "resolve" => c.resolve = true,
                        "push" | "referrers" => {}
                        _ => return Err(format!("unknown capability \"{}\"", Elided(cap))),
                    }
                }
                Some(c)
            }
        };
        let ca_files = f.ca.as_ref().map(|ca| {
            let list = match ca {
                OneOrMany::One(s) => std::slice::from_ref(s),
                OneOrMany::Many(v) => v.as_slice(),
            };
            list.iter().map(|p| base.join(p)).collect()
        });
        Ok(Settings {
            capabilities,
            ca_files,
            skip_verify: f.skip_verify,
        })
    }

    fn apply(&self, h: &mut RegistryHost) {
        if let Some(c) = self.capabilities {
            h.capabilities = c;
        }
        if let Some(ca) = &self.ca_files {
            h.tls.ca_files = ca.clone();
        }
        if let Some(skip) = self.skip_verify {
            h.tls.skip_verify = skip;
        }
    }
}

/// Parses a containerd `hosts.toml`; the error is the reason, elided.
fn parse_hosts_file(text: &str, path: &Path) -> std::result::Result<HostsFile, String> {
    let file: RawFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .and_then(|s| text.get(..s.start))
            .map_or(0, |before| before.matches('\n').count() + 1);
        format!("line {line}: {}", Elided(e.message().trim()))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut mirrors = Vec::with_capacity(file.host.0.len());
    for (url, fields) in &file.host.0 {
        let override_path = fields.override_path == Some(true);
        let mut h = endpoint_from_url(url, Capabilities::PULL, override_path)?;
        Settings::from_raw(fields, base)?.apply(&mut h);
        mirrors.push(h);
    }
    let override_path = file.fields.override_path == Some(true);
    let server = file
        .server
        .as_deref()
        .map(|url| endpoint_from_url(url, Capabilities::ALL, override_path))
        .transpose()?;
    Ok(HostsFile {
        mirrors,
        server,
        settings: Settings::from_raw(&file.fields, base)?,
    })
}

/// An endpoint from `[scheme://]host[:port][/path]`: the path gets `/v2` appended unless
/// it ends with it or `override_path` says the path is the API root (containerd's rule).
fn endpoint_from_url(
    raw: &str,
    caps: Capabilities,
    override_path: bool,
) -> std::result::Result<RegistryHost, String> {
    let bad = |why: &dyn std::fmt::Display| format!("host \"{}\": {why}", Elided(raw));
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| bad(&e))?;
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return Err(bad(&"not an http or https URL")),
    };
    let name = url.host_str().ok_or_else(|| bad(&"no host"))?;
    let host = match url.port() {
        Some(p) => format!("{name}:{p}"),
        None => name.to_string(),
    };
    let prefix = url.path().trim_end_matches('/');
    let path = if override_path || prefix.ends_with("/v2") {
        prefix.to_string()
    } else {
        format!("{prefix}/v2")
    };
    Ok(RegistryHost::new(host)
        .with_scheme(scheme)
        .with_capabilities(caps)
        .with_path(path))
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
