//! A scripted `/v2/` registry that misbehaves on purpose, for hostile-input tests.
//!
//! [`HostileRegistry`] answers every path from a table the test fills ([`route`],
//! [`manifest`], [`blob`], [`image`]), can demand an `Authorization` header and answer
//! without it with any `WWW-Authenticate` challenge ([`guard`]), and records every request
//! with its headers so a test can prove what reached which host. Each [`Response`] picks a
//! [`Body`]: honest bytes, a lying `Content-Length`, an endless chunked body, a stall after
//! some bytes, or no answer at all. Everything it sends is bounded ([`ENDLESS_CAP`]), and
//! it stops (closing stalled connections) when dropped.
//!
//! [`route`]: HostileRegistry::route
//! [`manifest`]: HostileRegistry::manifest
//! [`blob`]: HostileRegistry::blob
//! [`image`]: HostileRegistry::image
//! [`guard`]: HostileRegistry::guard

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_spec::image::{ImageConfigurationBuilder, ImageManifestBuilder, MediaType, RootFsBuilder};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::http::{Request, ServerThread, head, read_request};
use crate::{Error, Result};

/// The most an [`Body::Endless`] response sends before closing: far more than any sane
/// client buffers, little enough that a broken client cannot fill the test machine.
pub const ENDLESS_CAP: u64 = 512 << 20;

/// How long a stalled or hanging connection is held open (the server's drop ends it
/// sooner).
const HOLD: Duration = Duration::from_secs(600);

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What follows a response head.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Body {
    /// Exactly these bytes, with an honest `Content-Length` (unless the response sets one).
    Bytes(Vec<u8>),
    /// These bytes under a `Content-Length` of `declared`, which may be anything (larger,
    /// smaller, `18446744073709551615`, `-1`, garbage); the connection closes after them.
    Declared {
        /// The bytes sent.
        bytes: Vec<u8>,
        /// The `Content-Length` header value.
        declared: String,
    },
    /// An honest body of `len` bytes: `prefix`, then `fill` bytes, generated as sent (a
    /// huge body costs the test no memory).
    Sized {
        /// The first bytes.
        prefix: Vec<u8>,
        /// The byte that follows the prefix.
        fill: u8,
        /// The whole length, announced in `Content-Length`.
        len: u64,
    },
    /// A chunked body of `fill` bytes that never ends (up to [`ENDLESS_CAP`], then the
    /// connection closes without the last chunk).
    Endless {
        /// The byte repeated.
        fill: u8,
    },
    /// Announces `declared` bytes, sends `bytes`, then nothing while holding the connection.
    Stall {
        /// The bytes sent before stalling.
        bytes: Vec<u8>,
        /// The `Content-Length` announced.
        declared: u64,
    },
    /// Reads the request and never sends a response head.
    Hang,
}

/// One scripted response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, in order (`Content-Length` is added from the body when absent).
    pub headers: Vec<(String, String)>,
    /// What follows the head.
    pub body: Body,
}

impl Response {
    /// `200` with `bytes`.
    pub fn ok(bytes: impl Into<Vec<u8>>) -> Self {
        Response::with(200, Body::Bytes(bytes.into()))
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> Self {
        Response::with(status, Body::Bytes(Vec::new()))
    }

    /// `status` with `body`.
    pub fn with(status: u16, body: Body) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// A redirect (`307`) to `location`, which may be any string.
    pub fn redirect(location: impl Into<String>) -> Self {
        Response::status(307).header("Location", location)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The `Authorization` a guarded registry wants, and the challenge it answers without it.
#[derive(Debug, Clone)]
struct Guard {
    accept: String,
    challenge: String,
}

/// A response computed from the request (ranges, counting attempts, ...).
type Script = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

#[derive(Clone)]
enum Route {
    Fixed(Response),
    Script(Script),
}

#[derive(Default)]
struct Table {
    routes: HashMap<String, Route>,
    guard: Option<Guard>,
}

/// What [`HostileRegistry::image`] served.
#[derive(Debug, Clone)]
pub struct Served {
    /// The manifest digest (`sha256:<hex>`).
    pub manifest_digest: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
    /// Manifest, config and layer bytes: what an honest pull may store.
    pub legit_bytes: u64,
    /// The config digest.
    pub config_digest: String,
    /// The layer digests, in order.
    pub layer_digests: Vec<String>,
}

/// A loopback `/v2/` registry whose every answer is scripted; records all requests.
pub struct HostileRegistry {
    server: ServerThread,
    table: Arc<Mutex<Table>>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl HostileRegistry {
    /// Starts on `127.0.0.1` with an ephemeral port. `/v2/` answers `200` (or the guard's
    /// challenge); any path without a route answers `404` with a registry error body.
    pub fn start() -> Result<Self> {
        let table: Arc<Mutex<Table>> = Arc::default();
        let log: Arc<Mutex<Vec<Request>>> = Arc::default();
        let (t, l) = (table.clone(), log.clone());
        let server = ServerThread::start(Arc::new(move |sock| {
            Box::pin(serve(sock, t.clone(), l.clone()))
        }))?;
        Ok(HostileRegistry { server, table, log })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `127.0.0.1:<port>`, as used in references.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Answers `path` (without query, any method) with `response`; replaces an earlier route.
    pub fn route(&self, path: &str, response: Response) {
        self.set(path, Route::Fixed(response));
    }

    /// Answers `path` (without query, any method) with what `script` makes of each request.
    pub fn route_fn(
        &self,
        path: &str,
        script: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) {
        self.set(path, Route::Script(Arc::new(script)));
    }

    fn set(&self, path: &str, route: Route) {
        if let Ok(mut t) = self.table.lock() {
            t.routes.insert(path.to_string(), route);
        }
    }

    /// Requests under `/v2/` without `Authorization: <accept>` get `401` with
    /// `WWW-Authenticate: <challenge>` (which may be garbage).
    pub fn guard(&self, accept: impl Into<String>, challenge: impl Into<String>) {
        if let Ok(mut t) = self.table.lock() {
            t.guard = Some(Guard {
                accept: accept.into(),
                challenge: challenge.into(),
            });
        }
    }

    /// Serves `bytes` as `/v2/<repo>/blobs/<digest>` and returns the digest.
    pub fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        self.route(&format!("/v2/{repo}/blobs/{digest}"), Response::ok(bytes));
        digest
    }

    /// Serves `bytes` as the manifest `reference` (tag or digest) of `repo`, with its
    /// media type and true digest in the headers; returns the digest.
    pub fn manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        self.route(
            &format!("/v2/{repo}/manifests/{reference}"),
            Response::ok(bytes)
                .header("Content-Type", media_type)
                .header("Docker-Content-Digest", digest.clone()),
        );
        digest
    }

    /// Serves a whole image for this host's platform under `repo:tag` and by digest:
    /// `layers` are gzip blobs with their DiffIDs (as [`crate::OciLayout::tar_gz`] makes
    /// them); the config lists `diff_ids` instead when given.
    pub fn image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[(Vec<u8>, String)],
        diff_ids: Option<Vec<String>>,
    ) -> Result<Served> {
        let (config, manifest) = image_json(layers, diff_ids)?;
        let config_digest = self.blob(repo, &config);
        let mut layer_digests = Vec::new();
        let mut legit_bytes = (config.len() + manifest.len()) as u64;
        for (bytes, _) in layers {
            layer_digests.push(self.blob(repo, bytes));
            legit_bytes += bytes.len() as u64;
        }
        let manifest_digest = self.manifest(repo, tag, OCI_MANIFEST, &manifest);
        self.manifest(repo, &manifest_digest, OCI_MANIFEST, &manifest);
        Ok(Served {
            manifest_digest,
            manifest,
            legit_bytes,
            config_digest,
            layer_digests,
        })
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests that carried an `Authorization` header.
    pub fn authorized_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("authorization").is_some())
            .collect()
    }
}

impl std::fmt::Debug for HostileRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostileRegistry")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    dist_content::sha256_of(bytes).to_string()
}

/// This host's platform as OCI names it (`amd64`, `arm64`, ...).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Config and manifest JSON for an image of `layers` on this host's platform.
pub fn image_json(
    layers: &[(Vec<u8>, String)],
    diff_ids: Option<Vec<String>>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|(_, d)| d.clone()).collect());
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids)
        .build()
        .map_err(|e| Error::build("rootfs", e))?;
    let config = ImageConfigurationBuilder::default()
        .architecture(host_arch())
        .os("linux")
        .rootfs(rootfs)
        .build()
        .map_err(|e| Error::build("config", e))?;
    let config = serde_json::to_vec(&config).map_err(|e| Error::build("config", e))?;
    let desc = |mt: MediaType, bytes: &[u8]| -> Result<oci_spec::image::Descriptor> {
        let digest: oci_spec::image::Digest = sha256(bytes)
            .parse()
            .map_err(|e| Error::build("digest", e))?;
        Ok(oci_spec::image::Descriptor::new(
            mt,
            bytes.len() as u64,
            digest,
        ))
    };
    let layer_descs = layers
        .iter()
        .map(|(b, _)| desc(MediaType::ImageLayerGzip, b))
        .collect::<Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(desc(MediaType::ImageConfig, &config)?)
        .layers(layer_descs)
        .build()
        .map_err(|e| Error::build("manifest", e))?;
    let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::build("manifest", e))?;
    Ok((config, manifest))
}

fn pick(table: &Mutex<Table>, req: &Request) -> Response {
    let Ok(t) = table.lock() else {
        return Response::status(500);
    };
    let path = req.path();
    if path.starts_with("/v2/")
        && let Some(g) = &t.guard
        && req.header("authorization") != Some(g.accept.as_str())
    {
        return Response::with(
            401,
            Body::Bytes(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                    .to_vec(),
            ),
        )
        .header("WWW-Authenticate", g.challenge.clone())
        .header("Content-Type", "application/json");
    }
    match t.routes.get(path).cloned() {
        Some(Route::Fixed(r)) => return r,
        Some(Route::Script(script)) => {
            // Not under the lock: a script may be slow.
            drop(t);
            return script(req);
        }
        None => {}
    }
    if path == "/v2/" || path == "/v2" {
        return Response::ok(b"{}".to_vec()).header("Content-Type", "application/json");
    }
    Response::with(
        404,
        Body::Bytes(br#"{"errors":[{"code":"NOT_FOUND","message":"not scripted"}]}"#.to_vec()),
    )
    .header("Content-Type", "application/json")
}

async fn serve(sock: TcpStream, table: Arc<Mutex<Table>>, log: Arc<Mutex<Vec<Request>>>) {
    let (r, mut w) = sock.into_split();
    let mut reader = BufReader::new(r);
    while let Some(req) = read_request(&mut reader).await {
        if let Ok(mut l) = log.lock() {
            l.push(req.clone());
        }
        let response = pick(&table, &req);
        let is_head = req.method == "HEAD";
        let close = req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let has_length = response
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        let mut headers = response.headers;
        match response.body {
            Body::Bytes(bytes) => {
                if !has_length {
                    headers.push(("Content-Length".into(), bytes.len().to_string()));
                }
                let mut out = head(response.status, &headers);
                if !is_head {
                    out.extend_from_slice(&bytes);
                }
                if w.write_all(&out).await.is_err() {
                    return;
                }
            }
            Body::Declared { bytes, declared } => {
                headers.push(("Content-Length".into(), declared));
                let mut out = head(response.status, &headers);
                if !is_head {
                    out.extend_from_slice(&bytes);
                }
                let _ = w.write_all(&out).await;
                let _ = w.shutdown().await;
                return;
            }
            Body::Sized { prefix, fill, len } => {
                if !has_length {
                    headers.push(("Content-Length".into(), len.to_string()));
                }
                if w.write_all(&head(response.status, &headers)).await.is_err() {
                    return;
                }
                if is_head {
                    continue;
                }
                let n = prefix.len().min(usize::try_from(len).unwrap_or(usize::MAX));
                if w.write_all(&prefix[..n]).await.is_err() {
                    return;
                }
                let chunk = vec![fill; 64 << 10];
                let mut left = len.saturating_sub(n as u64);
                while left > 0 {
                    let k = left.min(chunk.len() as u64) as usize;
                    if w.write_all(&chunk[..k]).await.is_err() {
                        return;
                    }
                    left -= k as u64;
                }
            }
            Body::Endless { fill } => {
                headers.push(("Transfer-Encoding".into(), "chunked".into()));
                if w.write_all(&head(response.status, &headers)).await.is_err() || is_head {
                    return;
                }
                let mut chunk = format!("{:x}\r\n", 64 << 10).into_bytes();
                chunk.extend(std::iter::repeat_n(fill, 64 << 10));
                chunk.extend_from_slice(b"\r\n");
                let mut sent = 0u64;
                while sent < ENDLESS_CAP {
                    if w.write_all(&chunk).await.is_err() {
                        return;
                    }
                    sent += 64 << 10;
                }
                let _ = w.shutdown().await;
                return;
            }
            Body::Stall { bytes, declared } => {
                headers.push(("Content-Length".into(), declared.to_string()));
                let mut out = head(response.status, &headers);
                if !is_head {
                    out.extend_from_slice(&bytes);
                }
                let _ = w.write_all(&out).await;
                let _ = w.flush().await;
                tokio::time::sleep(HOLD).await;
                return;
            }
            Body::Hang => {
                tokio::time::sleep(HOLD).await;
                return;
            }
        }
        if close {
            let _ = w.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};

    fn exchange(reg: &HostileRegistry, request: &str) -> String {
        let mut s = std::net::TcpStream::connect(reg.addr()).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn a_guard_answers_its_challenge_and_every_request_is_recorded_with_headers() {
        let reg = HostileRegistry::start().unwrap();
        let digest = reg.blob("r", b"blob");
        reg.guard("Bearer t", "Garbage challenge");
        let path = format!("/v2/r/blobs/{digest}");
        let denied = exchange(
            &reg,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
        assert!(
            denied.contains("WWW-Authenticate: Garbage challenge"),
            "{denied}"
        );
        let ok = exchange(
            &reg,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n"
            ),
        );
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("blob"),
            "{ok}"
        );
        let log = reg.requests();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].header("authorization"), None);
        assert_eq!(log[1].header("authorization"), Some("Bearer t"));
        assert_eq!(reg.authorized_requests().len(), 1);
    }

    #[test]
    fn a_declared_length_is_sent_as_given_and_the_connection_closes() {
        let reg = HostileRegistry::start().unwrap();
        reg.route(
            "/x",
            Response::with(
                200,
                Body::Declared {
                    bytes: b"abc".to_vec(),
                    declared: u64::MAX.to_string(),
                },
            ),
        );
        let got = exchange(&reg, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            got.contains("Content-Length: 18446744073709551615\r\n"),
            "{got}"
        );
        assert!(got.ends_with("\r\n\r\nabc"), "{got}");
    }

    #[test]
    fn a_sized_body_is_generated_to_its_length() {
        let reg = HostileRegistry::start().unwrap();
        reg.route(
            "/big",
            Response::with(
                200,
                Body::Sized {
                    prefix: b"{".to_vec(),
                    fill: b' ',
                    len: 100_000,
                },
            ),
        );
        let got = exchange(
            &reg,
            "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let body = got.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(body.len(), 100_000);
        assert!(body.starts_with("{ "));
    }
}
