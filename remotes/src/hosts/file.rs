//! One containerd `hosts.toml`: read (bounded), parsed with the `toml` crate, and turned
//! into endpoints.

use std::path::{Path, PathBuf};

use dist_content::Elided;
use serde::Deserialize;

use super::{Capabilities, RegistryHost, Scheme};
pub(super) use crate::error::Problem;
use crate::{Error, Result};

/// The largest `hosts.toml` read; real ones are a few hundred bytes.
const MAX_HOSTS_FILE: u64 = 1 << 20;

/// The text of `path`, `None` when it does not exist, or why it cannot be read.
pub(super) fn read_bounded(path: &Path) -> std::result::Result<Option<String>, Problem> {
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
        Err(e) => return Err(Problem::with_source(e.to_string(), e)),
    };
    let mut text = String::new();
    file.take(MAX_HOSTS_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| Problem::with_source(e.to_string(), e))?;
    if text.len() as u64 > MAX_HOSTS_FILE {
        return Err("larger than 1 MiB".to_string().into());
    }
    Ok(Some(text))
}

/// One parsed containerd `hosts.toml`: mirrors (`[host."<url>"]` tables, in file order)
/// and the `server` with the top-level settings.
///
/// Parsed with the `toml` crate, so any valid TOML works: comments after headers, spaces
/// inside brackets, inline `host."<url>" = { ... }` tables. Fields are containerd's:
/// `server`, `capabilities` (`pull`, `resolve`; `push` and `referrers` are accepted and
/// ignored), `ca` (a path or a list, relative to the file's directory), `skip_verify` and
/// `override_path`; one is this library's own: `upload_chunk_size` (bytes, at least 1)
/// turns on chunked blob uploads to that endpoint (see
/// [`UploadOptions`](crate::UploadOptions)). Fields this library does not use (`client`, `header`, `dial_timeout`)
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
        parse_hosts_file(text, path)
            .map_err(|p| Error::config(path.display().to_string(), p.reason, p.source))
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
    #[serde(default)]
    upload_chunk_size: Option<u64>,
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
    upload_chunk_size: Option<u64>,
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
        if f.upload_chunk_size == Some(0) {
            return Err("upload_chunk_size must be at least 1".to_string());
        }
        Ok(Settings {
            capabilities,
            ca_files,
            skip_verify: f.skip_verify,
            upload_chunk_size: f.upload_chunk_size,
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
        if let Some(n) = self.upload_chunk_size {
            h.upload_chunk_size = Some(n);
        }
    }
}

/// Parses a containerd `hosts.toml`; the error is the reason, elided.
pub(super) fn parse_hosts_file(text: &str, path: &Path) -> std::result::Result<HostsFile, Problem> {
    let file: RawFile = toml::from_str(text).map_err(|mut e| {
        let line = e
            .span()
            .and_then(|s| text.get(..s.start))
            .map_or(0, |before| before.matches('\n').count() + 1);
        let reason = format!("line {line}: {}", Elided(e.message().trim()));
        // The source keeps toml's error, but not its copy of the offending line (which may
        // be 1 MiB long): the reason has the line number and the elided message.
        e.set_input(None);
        Problem::with_source(reason, e)
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
