//! An in-process token issuer for the registry's `token` auth mode.
//!
//! It signs RS256 JWTs with a throw-away RSA key whose self-signed certificate the registry
//! trusts (`auth.token.rootcertbundle`). distribution 2.8 finds the signing key from the
//! JWT header: we send the certificate itself in `x5c`, which it verifies against that
//! bundle. Keys, certificates and signatures come from the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::run;
use crate::http::{Request, ServerThread, head, read_request};
use crate::{Error, Result};

/// The refresh token the issuer accepts in the OAuth2 `refresh_token` grant.
pub const REFRESH_TOKEN: &str = "dist-test-refresh-token";

/// The token service name the registry is configured with.
pub(crate) const SERVICE: &str = "dist-test-registry";
/// The issuer name the registry is configured with.
pub(crate) const ISSUER: &str = "dist-test-issuer";

struct Config {
    username: String,
    password: String,
    key: PathBuf,
    cert_der_b64: String,
    expires_in: u64,
}

/// A running token server (`GET` with Basic credentials, `POST` OAuth2 grants).
pub struct TokenIssuer {
    server: ServerThread,
    _dir: tempfile::TempDir,
    cert: PathBuf,
    log: Arc<Mutex<Vec<Request>>>,
}

impl TokenIssuer {
    /// Generates a key and certificate and starts serving `/token` on loopback. Tokens
    /// are granted for every requested action to `username`/`password` (or the
    /// [`REFRESH_TOKEN`]); anonymous requests get a token with no access.
    pub fn start(username: &str, password: &str, expires_in: u64) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let key = dir.path().join("token.key");
        let cert = dir.path().join("token.crt");
        let der = dir.path().join("token.der");
        run(std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=dist-test-token-issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert))?;
        run(std::process::Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&der))?;
        let der_bytes = std::fs::read(&der).map_err(|e| Error::io(der.display().to_string(), e))?;
        let cfg = Arc::new(Config {
            username: username.to_string(),
            password: password.to_string(),
            key,
            cert_der_b64: STANDARD.encode(der_bytes),
            expires_in,
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let server = ServerThread::start(Arc::new(move |sock| {
            Box::pin(serve(sock, cfg.clone(), log2.clone()))
        }))?;
        Ok(TokenIssuer {
            server,
            _dir: dir,
            cert,
            log,
        })
    }

    /// The realm URL (`http://127.0.0.1:<port>/token`).
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.server.addr)
    }

    /// The PEM certificate the registry must trust.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// Every token request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

async fn serve(sock: TcpStream, cfg: Arc<Config>, log: Arc<Mutex<Vec<Request>>>) {
    let (r, mut w) = sock.into_split();
    let mut reader = BufReader::new(r);
    while let Some(req) = read_request(&mut reader).await {
        if let Ok(mut l) = log.lock() {
            l.push(req.clone());
        }
        let (status, body) = answer(&req, &cfg).await;
        let headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Content-Length".to_string(), body.len().to_string()),
        ];
        let mut out = head(status, &headers);
        out.extend_from_slice(body.as_bytes());
        if w.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn answer(req: &Request, cfg: &Config) -> (u16, String) {
    if req.path() != "/token" {
        return (404, "{}".into());
    }
    let (params, authorized) = match req.method.as_str() {
        "GET" => {
            let authorized = match req.header("authorization") {
                None => Some(false),
                Some(h) => Some(basic_matches(h, cfg)),
            };
            (req.query(), authorized)
        }
        "POST" => {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let ok = match get("grant_type") {
                Some("refresh_token") => get("refresh_token") == Some(REFRESH_TOKEN),
                Some("password") => {
                    get("username") == Some(cfg.username.as_str())
                        && get("password") == Some(cfg.password.as_str())
                }
                _ => false,
            };
            (form.clone(), Some(ok))
        }
        _ => return (405, "{}".into()),
    };
    // Wrong credentials are refused; no credentials get a token without access.
    let has_creds = req.header("authorization").is_some() || req.method == "POST";
    let granted = authorized == Some(true);
    if has_creds && !granted {
        return (401, r#"{"details":"invalid credentials"}"#.into());
    }
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let access: Vec<serde_json::Value> = if granted {
        scopes.iter().filter_map(|s| access_entry(s)).collect()
    } else {
        Vec::new()
    };
    let subject = if granted { cfg.username.as_str() } else { "" };
    match sign(cfg, subject, access).await {
        Ok(token) => {
            let body = serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": cfg.expires_in,
            });
            (200, body.to_string())
        }
        Err(e) => (
            500,
            serde_json::json!({ "error": e.to_string() }).to_string(),
        ),
    }
}

fn basic_matches(h: &str, cfg: &Config) -> bool {
    let Some(b64) = h.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", cfg.username, cfg.password);
    raw == expected.as_bytes()
}

/// `repository:<name>:<a>,<b>` -> `{"type", "name", "actions"}`.
fn access_entry(scope: &str) -> Option<serde_json::Value> {
    let (typ, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(serde_json::json!({ "type": typ, "name": name, "actions": actions }))
}

async fn sign(cfg: &Config, subject: &str, access: Vec<serde_json::Value>) -> Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [cfg.cert_der_b64],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + cfg.expires_in,
        "nbf": now.saturating_sub(30),
        "iat": now.saturating_sub(30),
        "jti": format!("{now}-{}", std::process::id()),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut child = tokio::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&cfg.key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("openssl dgst", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .await
            .map_err(|e| Error::io("openssl stdin", e))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::io("openssl dgst", e))?;
    if !out.status.success() {
        return Err(Error::tool(
            "openssl dgst",
            String::from_utf8_lossy(&out.stderr).to_string(),
        ));
    }
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(out.stdout)))
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("addr", &self.server.addr)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}
