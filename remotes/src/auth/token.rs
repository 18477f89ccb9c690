//! Fetching a Bearer token from a token server (the Docker token and OAuth2 flows).

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderValue;

use super::{Credential, ParseError, basic_header};
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

impl TokenRequest<'_> {
    /// Fetches a token; returns its `Authorization` value and the instant it should no
    /// longer be used.
    pub(crate) async fn fetch(&self, client: &reqwest::Client) -> Result<(HeaderValue, Instant)> {
        let bad_realm = |why: &dyn std::fmt::Display| {
            Error::protocol(
                self.registry_host,
                format!(
                    "bad token realm \"{}\": {why}",
                    dist_content::Elided(self.realm)
                ),
            )
        };
        let realm = url::Url::parse(self.realm).map_err(|e| bad_realm(&e))?;
        if !matches!(realm.scheme(), "https" | "http") || realm.host_str().is_none() {
            return Err(bad_realm(&"not an http(s) URL with a host"));
        }
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
    ) -> Result<(HeaderValue, Instant)> {
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(realm, e))? {
            if body.len().saturating_add(chunk.len()) > MAX_TOKEN_RESPONSE {
                return Err(Error::protocol(
                    self.registry_host,
                    "token response larger than 1 MiB",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        let realm_host = dist_content::Elided(realm.host_str().unwrap_or("?"));
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
        let parsed = parse_token_response(&body, SystemTime::now()).map_err(|source| {
            Error::AuthResponse {
                host: self.registry_host.to_string(),
                source,
            }
        })?;
        let mut header =
            HeaderValue::from_str(&format!("Bearer {}", parsed.token)).map_err(|_| {
                Error::AuthResponse {
                    host: self.registry_host.to_string(),
                    source: ParseError::TokenNotHeaderSafe,
                }
            })?;
        header.set_sensitive(true);
        // Renew a little early so a token does not expire mid-request. The lifetime is
        // at most 24 h, so the sum cannot overflow; checked all the same.
        let lifetime = parsed.lifetime;
        let use_for = lifetime.saturating_sub(lifetime / 10);
        let now = Instant::now();
        Ok((header, now.checked_add(use_for).unwrap_or(now)))
    }

    fn transport(&self, realm: &url::Url, e: reqwest::Error) -> Error {
        // reqwest's message quotes the realm URL, which the registry chose: elided.
        let what = format!("token server {}: {e}", realm.host_str().unwrap_or("?"));
        Error::unavailable(self.registry_host, dist_content::elide(&what))
    }
}

/// An error body from a token server (never a success body, which may hold a token), on
/// one line and elided.
fn snippet(body: &[u8]) -> String {
    super::error::snippet(String::from_utf8_lossy(body).trim())
}

/// The shortest time a token is used: shorter `expires_in` values (or an `issued_at` far
/// in the past) would have us fetch a token per request.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest time a token is used, whatever the server says.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A token server's answer: the token and how long to use it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The Bearer token (`token`, or OAuth2's `access_token`).
    pub token: String,
    /// How long the token may be used from now, within
    /// [`MIN_TOKEN_LIFETIME`]..=[`MAX_TOKEN_LIFETIME`].
    pub lifetime: Duration,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("TokenResponse")
            .field("token", &"***")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Parses a token server's JSON body (Docker's token flow or OAuth2) as of `now`.
///
/// The token is `access_token`, else `token`, and must be printable ASCII (it goes into an
/// `Authorization` header). Its lifetime is `expires_in` seconds (60 when absent) counted
/// from `issued_at` (RFC 3339) when that is a time in the past, else from `now`. Any JSON
/// number within a double's range is accepted for `expires_in` (larger ones make the
/// document invalid for `serde_json`): negative, fractional or huge values saturate, and
/// the result is clamped to [`MIN_TOKEN_LIFETIME`]..=[`MAX_TOKEN_LIFETIME`]. An `issued_at`
/// that is not a valid time is ignored. Anything else malformed is a [`ParseError`] that
/// never quotes the body. It never panics, whatever the input.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use dist_remotes::auth::parse_token_response;
///
/// let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#, SystemTime::now()).unwrap();
/// assert_eq!((t.token.as_str(), t.lifetime), ("abc", Duration::from_secs(300)));
/// let t = parse_token_response(br#"{"token":"abc","expires_in":18446744073709551615}"#,
///     SystemTime::now()).unwrap();
/// assert_eq!(t.lifetime, Duration::from_secs(24 * 60 * 60));
/// assert!(parse_token_response(b"<html>", SystemTime::now()).is_err());
/// ```
pub fn parse_token_response(
    body: &[u8],
    now: SystemTime,
) -> std::result::Result<TokenResponse, ParseError> {
    let not_json = |source| ParseError::TokenNotJson {
        len: body.len(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| not_json(Some(e)))?;
    let serde_json::Value::Object(obj) = value else {
        return Err(not_json(None));
    };
    let string = |field: &'static str| match obj.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ParseError::TokenField {
            field,
            expected: "a string",
        }),
    };
    let token = match (string("access_token")?, string("token")?) {
        (Some(t), _) if !t.is_empty() => t,
        (_, Some(t)) if !t.is_empty() => t,
        _ => return Err(ParseError::NoToken),
    };
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ParseError::TokenNotHeaderSafe);
    }
    let expires_in = match obj.get("expires_in") {
        None | Some(serde_json::Value::Null) => DEFAULT_TOKEN_LIFETIME,
        Some(serde_json::Value::Number(n)) => seconds(n),
        Some(_) => {
            return Err(ParseError::TokenField {
                field: "expires_in",
                expected: "a number",
            });
        }
    };
    // Docker counts the lifetime from `issued_at`; a time in the future (clock skew)
    // counts as now.
    let elapsed = string("issued_at")
        .ok()
        .flatten()
        .and_then(parse_rfc3339)
        .and_then(|issued| now.duration_since(issued).ok())
        .unwrap_or_default();
    let lifetime = expires_in
        .saturating_sub(elapsed)
        .clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME);
    Ok(TokenResponse {
        token: token.to_string(),
        lifetime,
    })
}

/// A JSON number of seconds as a duration: negative is zero, fractions are dropped, and
/// anything beyond `u64` saturates.
fn seconds(n: &serde_json::Number) -> Duration {
    if let Some(u) = n.as_u64() {
        return Duration::from_secs(u);
    }
    if n.as_i64().is_some() {
        return Duration::ZERO; // negative
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f > 0.0 => {
            // `as` saturates for floats out of range.
            Duration::from_secs(f as u64)
        }
        _ => Duration::ZERO,
    }
}

/// An RFC 3339 time (`2024-01-02T03:04:05.678Z`, `...+01:00`), or `None` when it is not one
/// or lies before 1970.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from.checked_add(len)?)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, min, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (k, d) in b[i..i + digits].iter().take(9).enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - k as u32);
        }
        i += digits;
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && sep(i + 3, b":") => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm);
    // every value is bounded by the four-digit year, so none of this can overflow.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset;
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_times_parse_to_the_right_instant() {
        for (s, secs, nanos) in [
            ("1970-01-01T00:00:00Z", 0, 0),
            ("2024-01-02T03:04:05Z", 1_704_164_645, 0),
            ("2000-03-01T00:00:00+01:00", 951_865_200, 0),
            ("2024-02-29t12:00:00.5z", 1_709_208_000, 500_000_000),
            (
                "1999-12-31T23:59:59.123456789123-05:30",
                946_704_599,
                123_456_789,
            ),
        ] {
            assert_eq!(
                parse_rfc3339(s),
                Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)),
                "{s}"
            );
        }
        for s in [
            "",
            "2024-01-02",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05.Z",
            "1969-12-31T23:59:59Z",
            "2024-01-02T03:04:05+0100",
            "２０２４-01-02T03:04:05Z",
            "2024-01-02T03:04:05Zjunk",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn lifetime_counts_from_issued_at_and_is_clamped() {
        let issued = 1_704_164_645;
        let body = |expires: &str| {
            format!(r#"{{"token":"t","expires_in":{expires},"issued_at":"2024-01-02T03:04:05Z"}}"#)
        };
        let life = |expires: &str, now: u64| {
            parse_token_response(body(expires).as_bytes(), at(now))
                .unwrap()
                .lifetime
        };
        assert_eq!(life("600", issued + 100), Duration::from_secs(500));
        assert_eq!(life("600", issued - 100), Duration::from_secs(600), "skew");
        assert_eq!(life("600", issued + 10_000), MIN_TOKEN_LIFETIME);
        assert_eq!(life("1e300", issued), MAX_TOKEN_LIFETIME);
        assert_eq!(life("-1e300", issued), MIN_TOKEN_LIFETIME);
        // Beyond a double, serde_json refuses the document: an error, not a panic.
        assert!(matches!(
            parse_token_response(body("1e400").as_bytes(), at(issued)),
            Err(ParseError::TokenNotJson { .. })
        ));
        assert_eq!(life("300.9", issued), Duration::from_secs(300));
        assert_eq!(life("18446744073709551616", issued), MAX_TOKEN_LIFETIME);
        assert_eq!(life("-9223372036854775808", issued), MIN_TOKEN_LIFETIME);
    }

    #[test]
    fn access_token_wins_and_errors_never_quote_the_body() {
        let t = parse_token_response(
            br#"{"token":"old","access_token":"new","refresh_token":"r"}"#,
            at(0),
        )
        .unwrap();
        assert_eq!(t.token, "new");
        assert_eq!(t.lifetime, DEFAULT_TOKEN_LIFETIME);
        assert!(!format!("{t:?}").contains("new"));
        let t = parse_token_response(br#"{"token":"old","access_token":""}"#, at(0)).unwrap();
        assert_eq!(t.token, "old");
        for body in [
            &br#"{"token":"secret""#[..],
            br#"{"token":"secret","expires_in":"secret"}"#,
            br#"{"token":["secret"]}"#,
            br#""secret""#,
            br#"{"token":"secret\u0000"}"#,
        ] {
            let err = parse_token_response(body, at(0)).unwrap_err();
            let mut msg = err.to_string();
            let mut src = std::error::Error::source(&err);
            while let Some(s) = src {
                msg.push_str(&s.to_string());
                src = s.source();
            }
            assert!(!msg.contains("secret"), "{msg}");
        }
    }
}
