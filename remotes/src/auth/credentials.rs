//! Where registry credentials come from: the [`Credentials`] trait and its defaults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OnceCell;

use crate::hosts::{DOCKER_HUB, DOCKER_HUB_API};
use crate::{Error, Result};

/// A secret for one registry host.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (Docker's `identitytoken`), exchanged with a POST to the
    /// token server.
    RefreshToken {
        /// The user name, if known (sent as the OAuth client's `username`, never as auth).
        username: String,
        /// The refresh token.
        token: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username:?}, ***)"),
            Credential::RefreshToken { username, .. } => {
                write!(f, "RefreshToken({username:?}, ***)")
            }
        }
    }
}

/// Supplies credentials per registry host (`host[:port]` as connected to, e.g.
/// `registry-1.docker.io` for Docker Hub).
///
/// [`DockerConfig`] and [`StaticCredentials`] cover the usual sources. Others take a few
/// lines, for example `user:password` from environment variables named after the host (a
/// map here, `std::env::vars().collect()` in a real tool):
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
///
/// use dist_remotes::{Credential, Credentials, ResolverOptions};
///
/// /// `REGISTRY_AUTH_GHCR_IO=user:password` for `ghcr.io`.
/// struct EnvCredentials(HashMap<String, String>);
///
/// #[async_trait::async_trait]
/// impl Credentials for EnvCredentials {
///     async fn credential(&self, host: &str) -> Option<Credential> {
///         let key: String = host
///             .chars()
///             .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
///             .collect();
///         let value = self.0.get(&format!("REGISTRY_AUTH_{key}"))?;
///         let (username, password) = value.split_once(':')?;
///         Some(Credential::Basic {
///             username: username.to_owned(),
///             password: password.to_owned(),
///         })
///     }
/// }
///
/// let creds = EnvCredentials(HashMap::from([
///     ("REGISTRY_AUTH_GHCR_IO".to_owned(), "me:s3cret".to_owned()),
///     ("REGISTRY_AUTH_LOCALHOST_5000".to_owned(), "admin:admin".to_owned()),
/// ]));
/// let basic = |u: &str, p: &str| Credential::Basic { username: u.into(), password: p.into() };
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(creds.credential("ghcr.io").await, Some(basic("me", "s3cret")));
/// assert_eq!(creds.credential("localhost:5000").await, Some(basic("admin", "admin")));
/// assert_eq!(creds.credential("quay.io").await, None); // anonymous
/// # });
///
/// // A DockerResolver built from these options asks `creds` when a registry challenges it.
/// let _options = ResolverOptions::default().with_credentials(Arc::new(creds));
/// ```
///
/// The method is async so that a provider may ask a program, a keychain or a network
/// service without blocking the runtime's worker thread; it is called only when a
/// registry answers `401`, never per request, and never while a lock is held.
#[async_trait::async_trait]
pub trait Credentials: Send + Sync {
    /// The credential for `host`, or `None` to go anonymous.
    async fn credential(&self, host: &str) -> Option<Credential>;
}

/// No credentials: every request is anonymous.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

#[async_trait::async_trait]
impl Credentials for Anonymous {
    async fn credential(&self, _host: &str) -> Option<Credential> {
        None
    }
}

/// A fixed map from host to credential, for tools that take `--user` and for tests.
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials(HashMap<String, Credential>);

impl StaticCredentials {
    /// An empty map.
    pub fn new() -> Self {
        StaticCredentials::default()
    }

    /// Adds user name and password for `host`.
    pub fn with_basic(
        mut self,
        host: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.0.insert(
            host.into(),
            Credential::Basic {
                username: username.into(),
                password: password.into(),
            },
        );
        self
    }

    /// Adds an arbitrary credential for `host`.
    pub fn with(mut self, host: impl Into<String>, cred: Credential) -> Self {
        self.0.insert(host.into(), cred);
        self
    }
}

#[async_trait::async_trait]
impl Credentials for StaticCredentials {
    async fn credential(&self, host: &str) -> Option<Credential> {
        self.0.get(host).cloned()
    }
}

/// Credentials from Docker's `config.json`, as `docker login` leaves them.
///
/// Reads `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`. A host's credential
/// comes from its credential helper (`credHelpers`, else `credsStore`: the program
/// `docker-credential-<name>`, asked with `get`), else from `auths`, whose entries carry a
/// base64 `auth` (`user:password`), or `username` and `password`, or an `identitytoken`.
///
/// The file is read once, when the `DockerConfig` is built; later edits need a new one.
/// Each host's helper runs at most once per `DockerConfig` (and its clones), as a child
/// process awaited with `tokio::process`: a slow helper delays only the requests to its
/// own host. A helper that fails or is missing is logged and the host falls back to
/// `auths`, as does one that takes longer than 30 s (see
/// [`with_helper_timeout`](DockerConfig::with_helper_timeout)), which is killed.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    auths: HashMap<String, Credential>,
    /// `credsStore`: the helper for hosts without one of their own.
    creds_store: Option<String>,
    /// `credHelpers`: per-host helpers, by normalised host.
    cred_helpers: HashMap<String, String>,
    /// Where helper programs are found instead of `PATH`.
    helper_dir: Option<PathBuf>,
    /// What each host's helper answered, set once per host. The map's lock is held only
    /// to find a host's cell, never while the helper runs.
    asked: Arc<Mutex<HashMap<String, HelperAnswerCell>>>,
    /// How long a helper may take.
    helper_timeout: Duration,
}

/// One host's helper answer, filled by the first asker.
type HelperAnswerCell = Arc<OnceCell<Option<Credential>>>;

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            auths: HashMap::new(),
            creds_store: None,
            cred_helpers: HashMap::new(),
            helper_dir: None,
            asked: Arc::default(),
            helper_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

/// What `docker-credential-<name> get` prints.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

#[derive(Debug, Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl DockerConfig {
    /// Loads the default file; a missing file gives an empty configuration. This reads
    /// the file on the calling thread; on a runtime, use
    /// [`load_async`](DockerConfig::load_async).
    pub fn load() -> Result<Self> {
        match Self::default_path() {
            Some(path) => Self::from_file(&path),
            None => Ok(DockerConfig::default()),
        }
    }

    /// [`load`](DockerConfig::load) on a blocking thread, so a runtime worker never
    /// waits on the file system.
    pub async fn load_async() -> Result<Self> {
        blocking("loading the Docker config", DockerConfig::load).await
    }

    /// [`from_file`](DockerConfig::from_file) on a blocking thread.
    pub async fn from_file_async(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        blocking("loading the Docker config", move || {
            DockerConfig::from_file(&path)
        })
        .await
    }

    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        config_path(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"))
    }

    /// Loads `path`; a missing file gives an empty configuration.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DockerConfig::default());
            }
            Err(e) => {
                return Err(Error::Io {
                    context: path.display().to_string(),
                    source: e,
                });
            }
        };
        Self::parse(&text).map_err(|reason| Error::Config {
            path: path.display().to_string(),
            reason,
        })
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        let file: ConfigFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut auths = HashMap::new();
        for (key, entry) in file.auths {
            if let Some(cred) = entry_credential(&key, entry)? {
                auths.insert(normalize_key(&key), cred);
            }
        }
        let helper = |key: &str, name: String| {
            // A helper names a program in PATH, never a path.
            if name.is_empty() || name.contains('/') {
                return Err(format!("{key}: {name:?} is not a credential helper name"));
            }
            Ok(name)
        };
        let creds_store = file
            .creds_store
            .filter(|n| !n.is_empty())
            .map(|n| helper("credsStore", n))
            .transpose()?;
        let cred_helpers = file
            .cred_helpers
            .into_iter()
            .map(|(host, n)| {
                Ok((
                    normalize_key(&host),
                    helper(&format!("credHelpers[{host:?}]"), n)?,
                ))
            })
            .collect::<std::result::Result<_, String>>()?;
        Ok(DockerConfig {
            auths,
            creds_store,
            cred_helpers,
            ..DockerConfig::default()
        })
    }

    /// Looks for `docker-credential-*` programs in `dir` instead of `PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    /// Gives up on a credential helper after `limit` (default 30 s); the host then falls
    /// back to `auths`.
    pub fn with_helper_timeout(mut self, limit: Duration) -> Self {
        self.helper_timeout = limit;
        self
    }

    /// Asks helper `name` for `host`'s credential, once per host: concurrent askers for
    /// one host wait for the same run; other hosts are not held up.
    async fn ask_helper(&self, name: &str, host: &str) -> Option<Credential> {
        let cell = {
            let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
            asked.entry(host.to_owned()).or_default().clone()
        };
        cell.get_or_init(|| self.run_helper(name, host))
            .await
            .clone()
    }

    async fn run_helper(&self, name: &str, host: &str) -> Option<Credential> {
        let program = format!("docker-credential-{name}");
        let program = match &self.helper_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let warn = |what: &dyn std::fmt::Display| {
            tracing::warn!(helper = %program.display(), %host, "credential helper: {what}");
        };
        // Docker Hub's credentials are stored under its v1 index URL.
        let server = if host == DOCKER_HUB {
            "https://index.docker.io/v1/"
        } else {
            host
        };
        let child = tokio::process::Command::new(&program)
            .arg("get")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // A helper that outlives its timeout (or a cancelled pull) is killed.
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                warn(&e);
                return None;
            }
        };
        // A helper waiting for a locked keychain must not hang the pull.
        let out = tokio::time::timeout(self.helper_timeout, helper_output(&mut child, server));
        let (status, stdout, stderr) = match out.await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                warn(&e);
                return None;
            }
            Err(_) => {
                let _ = child.start_kill();
                warn(&format_args!("timed out after {:?}", self.helper_timeout));
                return None;
            }
        };
        if !status.success() {
            let said = String::from_utf8_lossy(&stdout) + String::from_utf8_lossy(&stderr);
            if !said.contains("credentials not found") {
                warn(&format_args!(
                    "failed: {}",
                    dist_content::Elided(said.trim())
                ));
            }
            return None;
        }
        match serde_json::from_slice::<HelperAnswer>(&stdout) {
            Ok(a) if a.username == "<token>" => Some(Credential::RefreshToken {
                username: String::new(),
                token: a.secret,
            }),
            Ok(a) if a.username.is_empty() && a.secret.is_empty() => None,
            Ok(a) => Some(Credential::Basic {
                username: a.username,
                password: a.secret,
            }),
            Err(e) => {
                warn(&format_args!(
                    "answered something else than JSON credentials: {e}"
                ));
                None
            }
        }
    }
}

/// The most a helper may print on stdout or stderr; its answer is a few hundred bytes.
const MAX_HELPER_OUTPUT: u64 = 64 << 10;

/// Writes `server` to the helper, reads what it prints (bounded) and waits for it.
async fn helper_output(
    child: &mut tokio::process::Child,
    server: &str,
) -> std::io::Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>)> {
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is not an error.
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let out = child.stdout.take();
    let err = child.stderr.take();
    let read_out = async {
        if let Some(o) = out {
            o.take(MAX_HELPER_OUTPUT).read_to_end(&mut stdout).await?;
        }
        std::io::Result::Ok(())
    };
    let read_err = async {
        if let Some(e) = err {
            e.take(MAX_HELPER_OUTPUT).read_to_end(&mut stderr).await?;
        }
        std::io::Result::Ok(())
    };
    tokio::try_join!(read_out, read_err)?;
    let status = child.wait().await?;
    Ok((status, stdout, stderr))
}

/// Runs `f` on tokio's blocking pool; a task that panicked or was cancelled (runtime
/// shutdown) is an I/O error naming `what`.
async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::Io {
            context: what.to_string(),
            source: std::io::Error::other(e),
        })
    })
}

fn config_path(
    docker_config: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    match (docker_config, home) {
        (Some(dir), _) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
        (_, Some(h)) => Some(PathBuf::from(h).join(".docker").join("config.json")),
        _ => None,
    }
}

fn entry_credential(key: &str, e: AuthEntry) -> std::result::Result<Option<Credential>, String> {
    let (mut user, mut pass) = (
        e.username.unwrap_or_default(),
        e.password.unwrap_or_default(),
    );
    if let Some(auth) = e.auth.filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|err| format!("auths[{key:?}].auth: {err}"))?;
        let text = String::from_utf8(raw).map_err(|_| format!("auths[{key:?}].auth: not UTF-8"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or(format!("auths[{key:?}].auth: no ':' in user:password"))?;
        user = u.to_string();
        pass = p.to_string();
    }
    if let Some(token) = e.identitytoken.filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::RefreshToken {
            username: user,
            token,
        }));
    }
    if user.is_empty() && pass.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential::Basic {
        username: user,
        password: pass,
    }))
}

/// `https://index.docker.io/v1/` and `registry.example/` name hosts too: keep the host.
fn normalize_key(key: &str) -> String {
    let k = key.split_once("://").map_or(key, |(_, rest)| rest);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | DOCKER_HUB_API | DOCKER_HUB => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl Credentials for DockerConfig {
    async fn credential(&self, host: &str) -> Option<Credential> {
        let key = normalize_key(host);
        let helper = self.cred_helpers.get(&key).or(self.creds_store.as_ref());
        if let Some(name) = helper
            && let Some(cred) = self.ask_helper(name, &key).await
        {
            return Some(cred);
        }
        self.auths.get(&key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn docker_config_reads_auth_username_password_and_identity_tokens() {
        let cfg = DockerConfig::parse(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
                "reg.example:5000": {"username": "u2", "password": "p2"},
                "tok.example": {"auth": "dTM6", "identitytoken": "refresh"},
                "empty.example": {}
            }}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.credential("registry-1.docker.io").await,
            Some(Credential::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            cfg.credential("reg.example:5000").await,
            Some(Credential::Basic {
                username: "u2".into(),
                password: "p2".into()
            })
        );
        assert_eq!(
            cfg.credential("tok.example").await,
            Some(Credential::RefreshToken {
                username: "u3".into(),
                token: "refresh".into()
            })
        );
        assert_eq!(cfg.credential("empty.example").await, None);
        assert_eq!(cfg.credential("other.example").await, None);
    }

    #[test]
    fn docker_config_honours_docker_config_dir_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            DockerConfig::from_file(&dir.path().join("absent.json"))
                .unwrap()
                .auths
                .is_empty()
        );
        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let err = DockerConfig::from_file(&dir.path().join("config.json")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn the_async_loaders_read_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths": {"r.example": {"auth": "dTpw"}}}"#).unwrap();
        let cfg = DockerConfig::from_file_async(&path).await.unwrap();
        assert_eq!(
            cfg.credential("r.example").await,
            Some(Credential::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        let absent = DockerConfig::from_file_async(dir.path().join("absent.json"));
        assert!(absent.await.unwrap().auths.is_empty());
    }

    #[test]
    fn docker_config_env_wins_over_home() {
        let p = config_path(Some("/cfg".into()), Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/cfg/config.json")));
        let p = config_path(None, Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/home/u/.docker/config.json")));
        let p = config_path(Some("".into()), Some("/home/u".into()));
        assert_eq!(p, Some(PathBuf::from("/home/u/.docker/config.json")));
        assert_eq!(config_path(None, None), None);
    }

    #[test]
    fn credentials_never_appear_in_debug_output() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }

    /// Writes an executable `docker-credential-<name>` into `dir` that answers from
    /// `answers` (server URL -> JSON) and counts its runs in `<dir>/<name>.runs`.
    fn helper(dir: &Path, name: &str, answers: &[(&str, &str)]) {
        let mut script = format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\necho run >> '{}/{name}.runs'\nread -r server\ncase \"$server\" in\n",
            dir.display()
        );
        for (server, json) in answers {
            script.push_str(&format!("  '{server}') echo '{json}' ;;\n"));
        }
        script.push_str("  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n");
        executable(dir, name, &script);
    }

    /// Writes `script` as the executable `docker-credential-<name>` in `dir`.
    fn executable(dir: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn runs(dir: &Path, name: &str) -> usize {
        std::fs::read_to_string(dir.join(format!("{name}.runs")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn credential_helpers_answer_before_auths_and_run_once_per_host() {
        let dir = tempfile::tempdir().unwrap();
        helper(
            dir.path(),
            "store",
            &[
                (
                    "https://index.docker.io/v1/",
                    r#"{"ServerURL":"x","Username":"hub-user","Secret":"hub-pass"}"#,
                ),
                (
                    "tok.example",
                    r#"{"ServerURL":"tok.example","Username":"<token>","Secret":"refresh"}"#,
                ),
            ],
        );
        helper(
            dir.path(),
            "ghcr",
            &[(
                "ghcr.io",
                r#"{"ServerURL":"ghcr.io","Username":"gh","Secret":"gh-pat"}"#,
            )],
        );
        let cfg = DockerConfig::parse(
            r#"{"credsStore": "store",
                "credHelpers": {"ghcr.io": "ghcr"},
                "auths": {"fallback.example": {"auth": "dTpw"}, "ghcr.io": {"auth": "eDp5"}}}"#,
        )
        .unwrap()
        .with_helper_dir(dir.path());
        let basic = |u: &str, p: &str| Credential::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(
            cfg.credential("registry-1.docker.io").await,
            Some(basic("hub-user", "hub-pass"))
        );
        assert_eq!(cfg.credential("ghcr.io").await, Some(basic("gh", "gh-pat")));
        assert_eq!(
            cfg.credential("tok.example").await,
            Some(Credential::RefreshToken {
                username: String::new(),
                token: "refresh".into()
            })
        );
        // The store has nothing for this host: the auths entry answers.
        assert_eq!(
            cfg.credential("fallback.example").await,
            Some(basic("u", "p"))
        );
        assert_eq!(cfg.credential("nowhere.example").await, None);
        // Asked again: answered from memory.
        assert_eq!(cfg.credential("ghcr.io").await, Some(basic("gh", "gh-pat")));
        assert_eq!(
            cfg.clone().credential("registry-1.docker.io").await,
            Some(basic("hub-user", "hub-pass"))
        );
        assert_eq!(runs(dir.path(), "ghcr"), 1);
        assert_eq!(runs(dir.path(), "store"), 4, "one run per distinct host");
    }

    #[tokio::test]
    async fn a_missing_or_broken_helper_falls_back_to_auths() {
        let dir = tempfile::tempdir().unwrap();
        executable(dir.path(), "broken", "#!/bin/sh\necho not json\n");
        for store in ["absent", "broken"] {
            let cfg = DockerConfig::parse(&format!(
                r#"{{"credsStore": "{store}", "auths": {{"reg.example": {{"auth": "dTpw"}}}}}}"#
            ))
            .unwrap()
            .with_helper_dir(dir.path());
            assert_eq!(
                cfg.credential("reg.example").await,
                Some(Credential::Basic {
                    username: "u".into(),
                    password: "p".into()
                }),
                "{store}"
            );
        }
    }

    #[tokio::test]
    async fn a_hanging_helper_is_killed_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        executable(
            dir.path(),
            "hang",
            &format!(
                "#!/bin/sh\necho $$ > '{}/hang.pid'\nexec sleep 600\n",
                dir.path().display()
            ),
        );
        let cfg = DockerConfig::parse(
            r#"{"credsStore": "hang", "auths": {"reg.example": {"auth": "dTpw"}}}"#,
        )
        .unwrap()
        .with_helper_dir(dir.path())
        .with_helper_timeout(std::time::Duration::from_millis(200));
        assert!(
            matches!(
                cfg.credential("reg.example").await,
                Some(Credential::Basic { .. })
            ),
            "falls back to auths"
        );
        // The helper is gone (or a zombie waiting to be reaped), not left sleeping.
        let pid = std::fs::read_to_string(dir.path().join("hang.pid")).unwrap();
        let stat = format!("/proc/{}/stat", pid.trim());
        let mut alive = true;
        for _ in 0..100 {
            alive = std::fs::read_to_string(&stat)
                .is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim().starts_with('Z'));
            if !alive {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!alive, "the timed-out helper {} still runs", pid.trim());
    }

    #[tokio::test]
    async fn concurrent_asks_for_one_host_run_its_helper_once() {
        let dir = tempfile::tempdir().unwrap();
        executable(
            dir.path(),
            "slow",
            &format!(
                "#!/bin/sh\necho run >> '{}/slow.runs'\nsleep 0.3\necho '{{\"Username\":\"u\",\"Secret\":\"p\"}}'\n",
                dir.path().display()
            ),
        );
        let cfg = DockerConfig::parse(r#"{"credsStore": "slow"}"#)
            .unwrap()
            .with_helper_dir(dir.path());
        let clone = cfg.clone();
        let (a, b, c) = tokio::join!(
            cfg.credential("reg.example"),
            cfg.credential("reg.example"),
            clone.credential("reg.example")
        );
        assert!(matches!(a, Some(Credential::Basic { .. })));
        assert_eq!((&a, &b), (&b, &c));
        assert_eq!(runs(dir.path(), "slow"), 1);
    }

    #[test]
    fn helper_names_that_are_paths_are_rejected() {
        for bad in [
            r#"{"credsStore": "../../bin/sh"}"#,
            r#"{"credHelpers": {"a.io": "x/y"}}"#,
        ] {
            assert!(DockerConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
