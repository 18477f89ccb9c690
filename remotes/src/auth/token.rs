//! Fetching a Bearer token from a token server (the Docker token and OAuth2 flows).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use super::{Credential, basic_header};
use crate::hosts::HostsConfig;
use crate::{Error, Result};

/// Tokens without `expires_in` live this long (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token response larger than this is refused.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// One token request for `scope` at `realm`.
pub(crate) struct TokenRequest<'a> {
    pub(crate) registry_host: &'a str,
    pub(crate) realm: &'a str,
    pub(crate) service: Option<&'a str>,
    pub(crate) scope: &'a str,
    pub(crate) credential: Option<&'a Credential>,
    pub(crate) hosts: &'a HostsConfig,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenRequest<'_> {
    /// Fetches a token and the instant it should no longer be used.
    pub(crate) async fn fetch(&self, client: &reqwest::Client) -> Result<(String, Instant)> {
        let realm = url::Url::parse(self.realm).map_err(|e| {
            Error::protocol(
                self.registry_host,
                format!("bad token realm {:?}: {e}", self.realm),
            )
        })?;
        let credential = self
            .credential
            .filter(|_| self.may_send_credentials(&realm));
        match credential {
            Some(Credential::RefreshToken { username, token }) => {
                let resp = self.post_refresh(client, &realm, token).await?;
                if matches!(
                    resp.status(),
                    StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
                ) {
                    // Token servers without OAuth2 POST support take the refresh token
                    // as a password.
                    let basic = Credential::Basic {
                        username: username.clone(),
                        password: token.clone(),
                    };
                    let resp = self.get(client, &realm, Some(&basic)).await?;
                    return self.read(resp, &realm).await;
                }
                self.read(resp, &realm).await
            }
            other => {
                let resp = self.get(client, &realm, other).await?;
                self.read(resp, &realm).await
            }
        }
    }

    /// Credentials go to a token server over HTTPS, or over plain HTTP only to the
    /// registry host itself or a host the caller named as plain HTTP.
    fn may_send_credentials(&self, realm: &url::Url) -> bool {
        if realm.scheme() == "https" {
            return true;
        }
        let host = match (realm.host_str(), realm.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return false,
        };
        let same = host == self.registry_host || self.hosts.is_plain_http(&host);
        if !same {
            tracing::warn!(
                realm = %realm,
                registry = self.registry_host,
                "not sending credentials over plain HTTP to another host"
            );
        }
        same
    }

    async fn get(
        &self,
        client: &reqwest::Client,
        realm: &url::Url,
        cred: Option<&Credential>,
    ) -> Result<reqwest::Response> {
        let url = self.get_url(realm, cred);
        let mut req = client.get(url);
        if let Some(h) = cred.cloned().and_then(basic_header) {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        req.send().await.map_err(|e| self.transport(realm, e))
    }

    async fn post_refresh(
        &self,
        client: &reqwest::Client,
        realm: &url::Url,
        refresh: &str,
    ) -> Result<reqwest::Response> {
        let form = self.refresh_form(refresh);
        client
            .post(realm.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| self.transport(realm, e))
    }

    /// The OAuth2 refresh-token grant, form-encoded (kept out of async code: the encoder
    /// is not `Send`).
    fn refresh_form(&self, refresh: &str) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh)
            .append_pair("client_id", "dist-rs")
            .append_pair("access_type", "offline")
            .append_pair("scope", self.scope);
        if let Some(s) = self.service {
            form.append_pair("service", s);
        }
        form.finish()
    }

    /// The GET token URL with service, scopes and account.
    fn get_url(&self, realm: &url::Url, cred: Option<&Credential>) -> url::Url {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = self.service {
                q.append_pair("service", s);
            }
            for scope in self.scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", scope);
            }
            if let Some(Credential::Basic { username, .. }) = cred {
                q.append_pair("account", username);
            }
        }
        url
    }

    async fn read(
        &self,
        mut resp: reqwest::Response,
        realm: &url::Url,
    ) -> Result<(String, Instant)> {
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(realm, e))? {
            if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
                return Err(Error::protocol(
                    self.registry_host,
                    "token response too large",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let realm_host = realm.host_str().unwrap_or("?");
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                host: self.registry_host.to_string(),
                reason: format!(
                    "token server {realm_host} refused the request ({status}): {}",
                    snippet(&body)
                ),
            });
        }
        if status.is_server_error() {
            return Err(Error::unavailable(
                self.registry_host,
                format!("token server {realm_host}: {status}"),
            ));
        }
        if !status.is_success() {
            return Err(Error::protocol(
                self.registry_host,
                format!("token server {realm_host}: {status}: {}", snippet(&body)),
            ));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::protocol(self.registry_host, format!("token response: {e}")))?;
        let token = parsed
            .access_token
            .or(parsed.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::protocol(self.registry_host, "token response without a token"))?;
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .max(Duration::from_secs(1));
        // Renew a little early so a token does not expire mid-request.
        let expires = Instant::now() + lifetime.mul_f64(0.9);
        Ok((token, expires))
    }

    fn transport(&self, realm: &url::Url, e: reqwest::Error) -> Error {
        Error::unavailable(
            self.registry_host,
            format!("token server {}: {e}", realm.host_str().unwrap_or("?")),
        )
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.trim().to_string()
}
