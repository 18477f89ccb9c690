//! A scriptable HTTP/1.1 server for faults a real registry will not produce.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::Result;
pub use crate::http::Request;
use crate::http::{ServerThread, head, read_request};

/// What the server does with one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Reply {
    /// A whole response. `Content-Length` is added; a `HEAD` gets the head only.
    Full {
        /// The status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// Announces `announced` bytes, sends `body` (fewer), then closes the connection.
    Cut {
        /// The status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The bytes actually sent.
        body: Vec<u8>,
        /// The `Content-Length` announced.
        announced: usize,
    },
    /// Announces `announced` bytes, sends `body`, then sends nothing more while keeping the
    /// connection open (until the server is dropped).
    Stall {
        /// The status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The bytes sent before stalling.
        body: Vec<u8>,
        /// The `Content-Length` announced.
        announced: usize,
    },
    /// Reads the request and never answers (until the server is dropped).
    Hang,
}

impl Reply {
    /// `200` with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply::Full {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// An empty response with `status`.
    pub fn status(status: u16) -> Self {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        match &mut self {
            Reply::Full { headers, .. }
            | Reply::Cut { headers, .. }
            | Reply::Stall { headers, .. } => {
                headers.push((name.to_string(), value.into()));
            }
            Reply::Hang => {}
        }
        self
    }

    /// Serves `data` honouring a `Range: bytes=a-[b]` header in `req` (`206`), else `200`.
    pub fn ranged(req: &Request, data: &[u8]) -> Self {
        match parse_range(req.header("range"), data.len()) {
            Some((a, b)) => Reply::Full {
                status: 206,
                headers: vec![(
                    "Content-Range".into(),
                    format!("bytes {a}-{b}/{}", data.len()),
                )],
                body: data[a..=b].to_vec(),
            },
            None => Reply::ok(data.to_vec()),
        }
    }
}

/// Parses `bytes=a-` or `bytes=a-b` against a body of `len` bytes.
pub fn parse_range(h: Option<&str>, len: usize) -> Option<(usize, usize)> {
    let spec = h?.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let a: usize = a.trim().parse().ok()?;
    let b: usize = match b.trim() {
        "" => len.checked_sub(1)?,
        s => s.parse::<usize>().ok()?.min(len.checked_sub(1)?),
    };
    (a <= b).then_some((a, b))
}

type Script = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A loopback server that answers each request as a script says and records requests.
///
/// The script gets the request and its index (0 for the first request the server saw).
pub struct FaultServer {
    server: ServerThread,
    log: Arc<Mutex<Vec<Request>>>,
}

impl FaultServer {
    /// Starts the server on `127.0.0.1` with an ephemeral port.
    pub fn start(
        script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Result<Self> {
        let script: Arc<Script> = Arc::new(script);
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let server = ServerThread::start(Arc::new(move |sock| {
            Box::pin(serve(sock, script.clone(), log2.clone()))
        }))?;
        Ok(FaultServer { server, log })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `127.0.0.1:<port>`, as used in references.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

async fn serve(sock: TcpStream, script: Arc<Script>, log: Arc<Mutex<Vec<Request>>>) {
    let (r, mut w) = sock.into_split();
    let mut reader = BufReader::new(r);
    while let Some(req) = read_request(&mut reader).await {
        let index = match log.lock() {
            Ok(mut l) => {
                l.push(req.clone());
                l.len() - 1
            }
            Err(_) => return,
        };
        let is_head = req.method == "HEAD";
        match script(&req, index) {
            Reply::Full {
                status,
                mut headers,
                body,
            } => {
                if !headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                {
                    headers.push(("Content-Length".into(), body.len().to_string()));
                }
                let mut out = head(status, &headers);
                if !is_head {
                    out.extend_from_slice(&body);
                }
                if w.write_all(&out).await.is_err() {
                    return;
                }
            }
            Reply::Cut {
                status,
                mut headers,
                body,
                announced,
            } => {
                headers.push(("Content-Length".into(), announced.to_string()));
                let mut out = head(status, &headers);
                out.extend_from_slice(&body);
                let _ = w.write_all(&out).await;
                let _ = w.shutdown().await;
                return;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Reply::Stall {
                status,
                mut headers,
                body,
                announced,
            } => {
                headers.push(("Content-Length".into(), announced.to_string()));
                let mut out = head(status, &headers);
                out.extend_from_slice(&body);
                let _ = w.write_all(&out).await;
                let _ = w.flush().await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        }
    }
}

impl std::fmt::Debug for FaultServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultServer")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_against_the_length() {
        assert_eq!(parse_range(Some("bytes=2-"), 10), Some((2, 9)));
        assert_eq!(parse_range(Some("bytes=2-4"), 10), Some((2, 4)));
        assert_eq!(parse_range(Some("bytes=2-40"), 10), Some((2, 9)));
        assert_eq!(parse_range(Some("bytes=5-2"), 10), None);
        assert_eq!(parse_range(None, 10), None);
    }
}
