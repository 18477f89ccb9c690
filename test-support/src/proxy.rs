//! A forwarding HTTP/1.1 proxy in front of a real registry: it counts the request bytes
//! per method and path, and injects faults into chosen `PATCH`es: a status, a reset or a
//! hang without forwarding them (the registry's upload state stays what it acknowledged),
//! or, after forwarding all or half of one, a lost answer or a cut body.
//!
//! One request per connection: the proxy forwards each request with `Connection: close`
//! and answers with `Connection: close`, relaying the registry's response until it ends.
//! The `Host` header is forwarded unchanged, so absolute `Location`s the registry builds
//! point back at the proxy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::http::{ServerThread, head};
use crate::{Error, Result};

/// What the proxy does to one chosen `PATCH` instead of forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Reads the whole body, then answers this status (empty body).
    Status(u16),
    /// Reads half of the body, then resets the connection.
    Reset,
    /// Reads the whole body and never answers (until the proxy is dropped).
    Hang,
    /// Forwards the request (the registry takes the chunk), then answers this status
    /// instead of the registry's answer, which is lost.
    AnswerLost(u16),
    /// Forwards half of the body, then closes both connections: the registry sees a
    /// client that went away mid-body.
    CutMidBody,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (without `?`), possibly empty.
    pub query: String,
    /// The request headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// Body bytes received from the client (also for a request a fault answered).
    pub body_bytes: u64,
    /// The status sent back, `None` for a reset or hang.
    pub status: Option<u16>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    patches: usize,
    faults: HashMap<usize, Fault>,
    chunk_min: Option<u64>,
}

/// A counting, fault-injecting proxy on loopback; stops when dropped.
pub struct CountingProxy {
    server: ServerThread,
    state: Arc<Mutex<State>>,
}

impl CountingProxy {
    /// Starts a proxy forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let (st, up) = (state.clone(), upstream.to_string());
        let server = ServerThread::start(Arc::new(move |sock| {
            let (st, up) = (st.clone(), up.clone());
            Box::pin(async move {
                let _ = serve(sock, &up, &st).await;
            })
        }))?;
        Ok(CountingProxy { server, state })
    }

    /// `127.0.0.1:<port>`, the registry host clients use to go through the proxy.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    /// Applies `fault` to the `nth` `PATCH` (1-based, counted over the proxy's life).
    pub fn fault_patch(&self, nth: usize, fault: Fault) {
        self.lock().faults.insert(nth, fault);
    }

    /// Adds `OCI-Chunk-Min-Length: n` to the registry's answers to `POST …/blobs/uploads/`.
    pub fn add_chunk_min_length(&self, n: u64) {
        self.lock().chunk_min = Some(n);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Body bytes received in requests with `method`.
    pub fn body_bytes(&self, method: &str) -> u64 {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.method == method)
            .map(|s| s.body_bytes)
            .sum()
    }

    /// How many `PATCH`es have arrived (whole or not).
    pub fn patches(&self) -> usize {
        self.lock().patches
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for CountingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingProxy")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads a head (request or response): its lines up to the blank one.
async fn read_head<R: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<R>) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            return Some(lines);
        }
        lines.push(line);
    }
}

fn header_map(lines: &[String]) -> HashMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// Copies exactly `n` bytes from `from` to `to` (when given); returns how many arrived.
async fn copy_body<R: tokio::io::AsyncRead + Unpin>(
    from: &mut BufReader<R>,
    mut to: Option<&mut TcpStream>,
    n: u64,
) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    while done < n {
        let want = usize::try_from(n - done)
            .unwrap_or(buf.len())
            .min(buf.len());
        let got = match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(k) => k,
        };
        if let Some(t) = to.as_deref_mut()
            && t.write_all(&buf[..got]).await.is_err()
        {
            break;
        }
        done += got as u64;
    }
    done
}

async fn serve(sock: TcpStream, upstream: &str, state: &Mutex<State>) -> Result<()> {
    let mut client = BufReader::new(sock);
    let Some(lines) = read_head(&mut client).await else {
        return Ok(());
    };
    let mut first = lines
        .first()
        .map(|l| l.split_whitespace())
        .into_iter()
        .flatten();
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers = header_map(lines.get(1..).unwrap_or(&[]));
    let len: u64 = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let (index, fault, chunk_min) = {
        let mut st = lock(state);
        let fault = if method == "PATCH" {
            st.patches += 1;
            let n = st.patches;
            st.faults.get(&n).copied()
        } else {
            None
        };
        st.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query,
            headers: headers.clone(),
            body_bytes: 0,
            status: None,
        });
        (st.seen.len() - 1, fault, st.chunk_min)
    };
    let record = |bytes: u64, status: Option<u16>| {
        let mut st = lock(state);
        if let Some(s) = st.seen.get_mut(index) {
            s.body_bytes = bytes;
            s.status = status;
        }
    };

    match fault {
        Some(Fault::Status(code)) => {
            let got = copy_body(&mut client, None, len).await;
            record(got, Some(code));
            let h = [
                ("Content-Length".to_string(), "0".to_string()),
                ("Connection".to_string(), "close".to_string()),
            ];
            let _ = client.get_mut().write_all(&head(code, &h)).await;
            return Ok(());
        }
        Some(Fault::Reset) => {
            let got = copy_body(&mut client, None, len / 2).await;
            record(got, None);
            // Closing with the rest of the body unread makes the kernel send a reset.
            drop(client);
            return Ok(());
        }
        Some(Fault::Hang) => {
            let got = copy_body(&mut client, None, len).await;
            record(got, None);
            std::future::pending::<()>().await;
            return Ok(());
        }
        Some(Fault::AnswerLost(_) | Fault::CutMidBody) | None => {}
    }

    let mut up = TcpStream::connect(upstream)
        .await
        .map_err(|e| Error::io("connecting upstream", e))?;
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())
        .await
        .map_err(|e| Error::io("writing upstream", e))?;
    if fault == Some(Fault::CutMidBody) {
        let got = copy_body(&mut client, Some(&mut up), len / 2).await;
        record(got, None);
        // Both sides see the connection go mid-body.
        drop(up);
        drop(client);
        return Ok(());
    }
    let got = copy_body(&mut client, Some(&mut up), len).await;

    let mut upr = BufReader::new(up);
    let Some(resp) = read_head(&mut upr).await else {
        record(got, None);
        return Ok(());
    };
    let status = resp
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok());
    if let Some(Fault::AnswerLost(code)) = fault {
        // Let the registry finish (its answer is read and dropped), then answer `code`.
        let _ = tokio::io::copy(&mut upr, &mut tokio::io::sink()).await;
        record(got, Some(code));
        let h = [
            ("Content-Length".to_string(), "0".to_string()),
            ("Connection".to_string(), "close".to_string()),
        ];
        let _ = client.get_mut().write_all(&head(code, &h)).await;
        return Ok(());
    }
    record(got, status);
    let mut back = String::new();
    for (i, l) in resp.iter().enumerate() {
        if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        back.push_str(l);
        back.push_str("\r\n");
    }
    if let Some(n) = chunk_min
        && method == "POST"
        && path.ends_with("/blobs/uploads/")
    {
        back.push_str(&format!("OCI-Chunk-Min-Length: {n}\r\n"));
    }
    back.push_str("Connection: close\r\n\r\n");
    let sock = client.get_mut();
    sock.write_all(back.as_bytes())
        .await
        .map_err(|e| Error::io("writing to client", e))?;
    let _ = tokio::io::copy(&mut upr, sock).await;
    let _ = sock.shutdown().await;
    Ok(())
}
