//! Where registry credentials come from: the [`Credentials`] trait and its defaults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::Deserialize;

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
/// impl Credentials for EnvCredentials {
///     fn credential(&self, host: &str) -> Option<Credential> {
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
/// assert_eq!(creds.credential("ghcr.io"), Some(basic("me", "s3cret")));
/// assert_eq!(creds.credential("localhost:5000"), Some(basic("admin", "admin")));
/// assert_eq!(creds.credential("quay.io"), None); // anonymous
///
/// // A DockerResolver built from these options asks `creds` when a registry challenges it.
/// let _options = ResolverOptions::default().with_credentials(Arc::new(creds));
/// ```
pub trait Credentials: Send + Sync {
    /// The credential for `host`, or `None` to go anonymous.
    fn credential(&self, host: &str) -> Option<Credential>;
}

/// No credentials: every request is anonymous.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

impl Credentials for Anonymous {
    fn credential(&self, _host: &str) -> Option<Credential> {
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

impl Credentials for StaticCredentials {
    fn credential(&self, host: &str) -> Option<Credential> {
        self.0.get(host).cloned()
    }
}

/// Credentials from Docker's `config.json`, as `docker login` leaves them.
///
/// Reads `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`. A host's credential
/// comes from its credential helper (`credHelpers`, else `credsStore`: the program
/// `docker-credential-<name>`, asked with `get`), else from `auths`, whose entries carry a
/// base64 `auth` (`user:password`), or `username` and `password`, or an `identitytoken`.
/// Each host's helper runs at most once per `DockerConfig` (synchronously, on the thread
/// asking: helpers answer in milliseconds); a helper that fails or is missing is logged
/// and the host falls back to `auths`, as does one that takes longer than 30 s (see
/// [`with_helper_timeout`](DockerConfig::with_helper_timeout)).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    auths: HashMap<String, Credential>,
    /// `credsStore`: the helper for hosts without one of their own.
    creds_store: Option<String>,
    /// `credHelpers`: per-host helpers, by normalised host.
    cred_helpers: HashMap<String, String>,
    /// Where helper programs are found instead of `PATH`.
    helper_dir: Option<PathBuf>,
    /// What each host's helper answered.
    asked: Arc<Mutex<HashMap<String, Option<Credential>>>>,
    /// How long a helper may take.
    helper_timeout: std::time::Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            auths: HashMap::new(),
            creds_store: None,
            cred_helpers: HashMap::new(),
            helper_dir: None,
            asked: Arc::default(),
            helper_timeout: std::time::Duration::from_secs(30),
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
    /// Loads the default file; a missing file gives an empty configuration.
    pub fn load() -> Result<Self> {
        match Self::default_path() {
            Some(path) => Self::from_file(&path),
            None => Ok(DockerConfig::default()),
        }
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
    pub fn with_helper_timeout(mut self, limit: std::time::Duration) -> Self {
        self.helper_timeout = limit;
        self
    }

    /// Asks helper `name` for `host`'s credential, once per host.
    fn ask_helper(&self, name: &str, host: &str) -> Option<Credential> {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(answer) = asked.get(host) {
            return answer.clone();
        }
        let answer = self.run_helper(name, host);
        asked.insert(host.to_owned(), answer.clone());
        answer
    }

    fn run_helper(&self, name: &str, host: &str) -> Option<Credential> {
        use std::io::Write as _;
        let program = format!("docker-credential-{name}");
        let program = match &self.helper_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        // Docker Hub's credentials are stored under its v1 index URL.
        let server = if host == DOCKER_HUB {
            "https://index.docker.io/v1/"
        } else {
            host
        };
        let child = std::process::Command::new(&program)
            .arg("get")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(helper = %program.display(), %host, "credential helper: {e}");
                return None;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(server.as_bytes());
        }
        // A helper waiting for a locked keychain must not hang the pull: its answer is a
        // few hundred bytes, which fit in the pipe until it exits.
        let deadline = std::time::Instant::now() + self.helper_timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    tracing::warn!(helper = %program.display(), %host, "credential helper timed out after {:?}", self.helper_timeout);
                    return None;
                }
                Err(e) => {
                    tracing::warn!(helper = %program.display(), %host, "credential helper: {e}");
                    return None;
                }
            }
        }
        let out = match child.wait_with_output() {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(helper = %program.display(), %host, "credential helper: {e}");
                return None;
            }
        };
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            if !said.contains("credentials not found") {
                tracing::warn!(helper = %program.display(), %host, "credential helper failed: {}", said.trim());
            }
            return None;
        }
        match serde_json::from_slice::<HelperAnswer>(&out.stdout) {
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
                tracing::warn!(helper = %program.display(), %host, "credential helper answered something else than JSON credentials: {e}");
                None
            }
        }
    }
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

impl Credentials for DockerConfig {
    fn credential(&self, host: &str) -> Option<Credential> {
        let key = normalize_key(host);
        let helper = self.cred_helpers.get(&key).or(self.creds_store.as_ref());
        helper
            .and_then(|name| self.ask_helper(name, &key))
            .or_else(|| self.auths.get(&key).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_reads_auth_username_password_and_identity_tokens() {
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
            cfg.credential("registry-1.docker.io"),
            Some(Credential::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            cfg.credential("reg.example:5000"),
            Some(Credential::Basic {
                username: "u2".into(),
                password: "p2".into()
            })
        );
        assert_eq!(
            cfg.credential("tok.example"),
            Some(Credential::RefreshToken {
                username: "u3".into(),
                token: "refresh".into()
            })
        );
        assert_eq!(cfg.credential("empty.example"), None);
        assert_eq!(cfg.credential("other.example"), None);
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

    #[test]
    fn credential_helpers_answer_before_auths_and_run_once_per_host() {
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
            cfg.credential("registry-1.docker.io"),
            Some(basic("hub-user", "hub-pass"))
        );
        assert_eq!(cfg.credential("ghcr.io"), Some(basic("gh", "gh-pat")));
        assert_eq!(
            cfg.credential("tok.example"),
            Some(Credential::RefreshToken {
                username: String::new(),
                token: "refresh".into()
            })
        );
        // The store has nothing for this host: the auths entry answers.
        assert_eq!(cfg.credential("fallback.example"), Some(basic("u", "p")));
        assert_eq!(cfg.credential("nowhere.example"), None);
        // Asked again: answered from memory.
        assert_eq!(cfg.credential("ghcr.io"), Some(basic("gh", "gh-pat")));
        assert_eq!(
            cfg.clone().credential("registry-1.docker.io"),
            Some(basic("hub-user", "hub-pass"))
        );
        assert_eq!(runs(dir.path(), "ghcr"), 1);
        assert_eq!(runs(dir.path(), "store"), 4, "one run per distinct host");
    }

    #[test]
    fn a_missing_or_broken_helper_falls_back_to_auths() {
        let dir = tempfile::tempdir().unwrap();
        executable(dir.path(), "broken", "#!/bin/sh\necho not json\n");
        for store in ["absent", "broken"] {
            let cfg = DockerConfig::parse(&format!(
                r#"{{"credsStore": "{store}", "auths": {{"reg.example": {{"auth": "dTpw"}}}}}}"#
            ))
            .unwrap()
            .with_helper_dir(dir.path());
            assert_eq!(
                cfg.credential("reg.example"),
                Some(Credential::Basic {
                    username: "u".into(),
                    password: "p".into()
                }),
                "{store}"
            );
        }
    }

    #[test]
    fn a_hanging_helper_is_killed_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        executable(dir.path(), "hang", "#!/bin/sh\nexec sleep 600\n");
        let cfg = DockerConfig::parse(
            r#"{"credsStore": "hang", "auths": {"reg.example": {"auth": "dTpw"}}}"#,
        )
        .unwrap()
        .with_helper_dir(dir.path())
        .with_helper_timeout(std::time::Duration::from_millis(200));
        assert!(
            matches!(
                cfg.credential("reg.example"),
                Some(Credential::Basic { .. })
            ),
            "falls back to auths"
        );
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
