//! Registry authentication driven by `WWW-Authenticate` challenges.
//!
//! Nothing is hard-coded per registry: the first `401` tells us whether the host wants
//! Basic credentials or a Bearer token from a token server (`realm`, `service`, `scope`).
//! Tokens are cached per host and scope until they expire, and fetched again after a `401`.
//!
//! The parsers of what a registry sends, [`parse_www_authenticate`] and
//! [`parse_token_response`], are public so they can be fuzzed and reused; they never
//! panic and their errors quote at most an elided snippet of the input.

mod challenge;
mod credentials;
mod error;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};

pub use challenge::{Challenge, MAX_CHALLENGE_LEN, parse_www_authenticate};
pub use credentials::{Anonymous, Credential, Credentials, DockerConfig, StaticCredentials};
pub use error::ParseError;
pub use token::{MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, TokenResponse, parse_token_response};

use crate::hosts::HostsConfig;
use crate::{Error, Result};
pub(crate) use token::TokenRequest;

/// How one host wants to be authenticated, learned from its challenge.
#[derive(Debug, Clone)]
enum Mode {
    /// Basic, with the header made from the host's credential when the challenge came.
    Basic(HeaderValue),
    Bearer,
}

#[derive(Debug)]
struct HostAuth {
    mode: Mode,
    /// Whether the provider had a credential for the host (for error messages).
    had_credential: bool,
    /// `Authorization` values per scope, with the instant they stop being used.
    tokens: HashMap<String, (HeaderValue, Instant)>,
}

/// Per-host authentication state shared by every request of a resolver.
///
/// The state's lock is only held to read or update the map, never across an `.await`:
/// asking the [`Credentials`] provider and fetching a token happen without it, so a slow
/// credential helper for one host does not hold up requests to another.
pub(crate) struct Authorizer {
    creds: Arc<dyn Credentials>,
    hosts: HostsConfig,
    state: Mutex<HashMap<String, HostAuth>>,
}

impl Authorizer {
    /// `hosts` says which plain-HTTP hosts the caller trusts with credentials.
    pub(crate) fn new(creds: Arc<dyn Credentials>, hosts: HostsConfig) -> Self {
        Authorizer {
            creds,
            hosts,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the provider had a credential for `host` when it last challenged us (for
    /// error messages).
    pub(crate) fn has_credential(&self, host: &str) -> bool {
        self.lock().get(host).is_some_and(|a| a.had_credential)
    }

    /// The `Authorization` value to send to `host` for `scope`, when one is known.
    pub(crate) fn header(&self, host: &str, scope: &str) -> Option<HeaderValue> {
        let hosts = self.lock();
        let auth = hosts.get(host)?;
        match &auth.mode {
            Mode::Basic(h) => Some(h.clone()),
            Mode::Bearer => {
                let (token, expires) = auth.tokens.get(scope)?;
                (Instant::now() < *expires).then(|| token.clone())
            }
        }
    }

    /// Handles a `401` from `host`: learns its challenge and, for Bearer, fetches a fresh
    /// token for `scope`. Fails with `Unauthorized` naming `host` when there is no way in,
    /// and with [`Error::AuthResponse`] when the challenge is garbage.
    pub(crate) async fn on_unauthorized(
        &self,
        client: &reqwest::Client,
        host: &str,
        scope: &str,
        headers: &HeaderMap,
    ) -> Result<()> {
        let mut challenges = Vec::new();
        let mut garbage = None;
        for value in headers.get_all(WWW_AUTHENTICATE) {
            let parsed = match value.to_str() {
                Ok(v) => parse_www_authenticate(v),
                Err(_) => Err(ParseError::Challenge {
                    header: error::snippet(&String::from_utf8_lossy(value.as_bytes())),
                    reason: "not visible ASCII",
                }),
            };
            match parsed {
                Ok(c) => challenges.extend(c),
                Err(e) => garbage = garbage.or(Some(e)),
            }
        }
        let pick = challenges
            .iter()
            .find(|c| c.scheme == "bearer")
            .or_else(|| challenges.iter().find(|c| c.scheme == "basic"));
        let unauthorized = |reason: &str| Error::Unauthorized {
            host: host.to_string(),
            reason: reason.to_string(),
        };
        let Some(ch) = pick else {
            if let Some(source) = garbage {
                return Err(Error::AuthResponse {
                    host: host.to_string(),
                    source,
                });
            }
            return Err(unauthorized(
                "401 without a supported WWW-Authenticate challenge",
            ));
        };
        // No lock is held here: the provider may run a helper program.
        let cred = self.creds.credential(host).await;
        let had_credential = cred.is_some();
        if ch.scheme == "basic" {
            let header = match cred {
                None => {
                    return Err(unauthorized(
                        "basic authentication required, no credentials",
                    ));
                }
                Some(Credential::RefreshToken { .. }) => {
                    return Err(unauthorized("basic authentication required, only a token"));
                }
                Some(c) => basic_header(c).ok_or_else(|| {
                    unauthorized("the credential cannot be sent in an HTTP header")
                })?,
            };
            self.lock().insert(
                host.to_string(),
                HostAuth {
                    mode: Mode::Basic(header),
                    had_credential,
                    tokens: HashMap::new(),
                },
            );
            return Ok(());
        }
        let realm = ch
            .params
            .get("realm")
            .ok_or_else(|| unauthorized("bearer challenge without realm"))?;
        let req = TokenRequest {
            registry_host: host,
            realm,
            service: ch.params.get("service").map(String::as_str),
            scope,
            credential: cred.as_ref(),
            hosts: &self.hosts,
        };
        let (token, expires) = req.fetch(client).await?;
        let mut hosts = self.lock();
        let entry = hosts.entry(host.to_string()).or_insert_with(|| HostAuth {
            mode: Mode::Bearer,
            had_credential,
            tokens: HashMap::new(),
        });
        if !matches!(entry.mode, Mode::Bearer) {
            entry.tokens.clear();
        }
        entry.mode = Mode::Bearer;
        entry.had_credential = had_credential;
        // Expired tokens of other scopes go, so the map cannot grow without bound.
        let now = Instant::now();
        entry.tokens.retain(|_, (_, until)| *until > now);
        entry.tokens.insert(scope.to_string(), (token, expires));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostAuth>> {
        // A poisoned lock only means another task panicked mid-update of a cache; the
        // map is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn basic_header(cred: Credential) -> Option<HeaderValue> {
    let Credential::Basic { username, password } = cred else {
        return None;
    };
    let raw = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut v = HeaderValue::from_str(&format!("Basic {raw}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}
