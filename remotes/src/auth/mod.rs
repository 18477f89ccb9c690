//! Registry authentication driven by `WWW-Authenticate` challenges.
//!
//! Nothing is hard-coded per registry: the first `401` tells us whether the host wants
//! Basic credentials or a Bearer token from a token server (`realm`, `service`, `scope`).
//! Tokens are cached per host and scope until they expire, and fetched again after a `401`.

mod challenge;
mod credentials;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};

pub use credentials::{Anonymous, Credential, Credentials, DockerConfig, StaticCredentials};

use crate::hosts::HostsConfig;
use crate::{Error, Result};
use challenge::parse_challenges;
pub(crate) use token::TokenRequest;

/// How one host wants to be authenticated, learned from its challenge.
#[derive(Debug, Clone)]
enum Mode {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug)]
struct HostAuth {
    mode: Mode,
    tokens: HashMap<String, (String, Instant)>,
}

/// Per-host authentication state shared by every request of a resolver.
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

    /// Whether the provider has a credential for `host` (for error messages).
    pub(crate) fn has_credential(&self, host: &str) -> bool {
        self.creds.credential(host).is_some()
    }

    /// The `Authorization` value to send to `host` for `scope`, when one is known.
    pub(crate) fn header(&self, host: &str, scope: &str) -> Option<HeaderValue> {
        let hosts = self.state.lock().ok()?;
        let auth = hosts.get(host)?;
        match &auth.mode {
            Mode::Basic => basic_header(self.creds.credential(host)?),
            Mode::Bearer { .. } => {
                let (token, expires) = auth.tokens.get(scope)?;
                if Instant::now() >= *expires {
                    return None;
                }
                HeaderValue::from_str(&format!("Bearer {token}")).ok()
            }
        }
    }

    /// Handles a `401` from `host`: learns its challenge and, for Bearer, fetches a fresh
    /// token for `scope`. Fails with `Unauthorized` naming `host` when there is no way in.
    pub(crate) async fn on_unauthorized(
        &self,
        client: &reqwest::Client,
        host: &str,
        scope: &str,
        headers: &HeaderMap,
    ) -> Result<()> {
        let values = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let challenges = parse_challenges(values);
        let pick = challenges
            .iter()
            .find(|c| c.scheme == "bearer")
            .or_else(|| challenges.iter().find(|c| c.scheme == "basic"));
        let unauthorized = |reason: &str| Error::Unauthorized {
            host: host.to_string(),
            reason: reason.to_string(),
        };
        let Some(ch) = pick else {
            return Err(unauthorized(
                "401 without a supported WWW-Authenticate challenge",
            ));
        };
        let cred = self.creds.credential(host);
        let mode = if ch.scheme == "basic" {
            if cred.is_none() {
                return Err(unauthorized(
                    "basic authentication required, no credentials",
                ));
            }
            if let Some(Credential::RefreshToken { .. }) = cred {
                return Err(unauthorized("basic authentication required, only a token"));
            }
            Mode::Basic
        } else {
            let realm = ch
                .params
                .get("realm")
                .ok_or_else(|| unauthorized("bearer challenge without realm"))?;
            Mode::Bearer {
                realm: realm.clone(),
                service: ch.params.get("service").cloned(),
            }
        };
        if let Mode::Bearer { realm, service } = &mode {
            let req = TokenRequest {
                registry_host: host,
                realm,
                service: service.as_deref(),
                scope,
                credential: cred.as_ref(),
                hosts: &self.hosts,
            };
            let (token, expires) = req.fetch(client).await?;
            let mut hosts = self.lock();
            let entry = hosts.entry(host.to_string()).or_insert_with(|| HostAuth {
                mode: mode.clone(),
                tokens: HashMap::new(),
            });
            entry.mode = mode.clone();
            entry.tokens.insert(scope.to_string(), (token, expires));
        } else {
            let mut hosts = self.lock();
            hosts.insert(
                host.to_string(),
                HostAuth {
                    mode,
                    tokens: HashMap::new(),
                },
            );
        }
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
