//! Tar layers with header bombs: a PAX or GNU special entry that claims (and holds)
//! hundreds of MiB, inside a gzip layer well under a MiB.
//!
//! The tar stream is written through the system's `gzip -6` and `sha256sum` rather than
//! in-process, so a 512 MiB layer costs a second or two even in an unoptimised test build.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Which special header carries the bomb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BombKind {
    /// A PAX extended header (`x`) with one huge `path` record.
    PaxLocal,
    /// A PAX global header (`g`) with one huge `path` record.
    PaxGlobal,
    /// A GNU long name (`L`).
    GnuLongName,
    /// A GNU long link name (`K`).
    GnuLongLink,
}

const BLOCK: usize = 512;

/// A gzip layer whose first entry is a `kind` header of `claimed` bytes (all present),
/// followed by one small file; returns `(gzip bytes, DiffID)`.
pub fn header_bomb_layer(kind: BombKind, claimed: u64) -> Result<(Vec<u8>, String)> {
    let mut gzip = Command::new("gzip")
        .args(["-6", "-c", "-n"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("spawning gzip", e))?;
    let mut sha = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("spawning sha256sum", e))?;
    let (Some(gz_in), Some(sha_in)) = (gzip.stdin.take(), sha.stdin.take()) else {
        return Err(Error::tool("gzip", "no stdin pipe"));
    };
    let writer = std::thread::spawn(move || write_bomb(kind, claimed, gz_in, sha_in));
    let mut gz = Vec::new();
    if let Some(mut out) = gzip.stdout.take() {
        out.read_to_end(&mut gz)
            .map_err(|e| Error::io("reading gzip", e))?;
    }
    writer
        .join()
        .map_err(|_| Error::tool("bomb writer", "panicked"))?
        .map_err(|e| Error::io("writing the bomb", e))?;
    let status = gzip.wait().map_err(|e| Error::io("gzip", e))?;
    let out = sha
        .wait_with_output()
        .map_err(|e| Error::io("sha256sum", e))?;
    if !status.success() || !out.status.success() {
        return Err(Error::tool(
            "gzip | sha256sum",
            format!("{status}, {}", out.status),
        ));
    }
    let hex = String::from_utf8_lossy(&out.stdout);
    let hex = hex.split_whitespace().next().unwrap_or_default();
    Ok((gz, format!("sha256:{hex}")))
}

fn write_bomb(
    kind: BombKind,
    claimed: u64,
    gz: impl Write,
    sha: impl Write,
) -> std::io::Result<()> {
    let mut out = Tee(gz, sha);
    let (entry_type, name, gnu) = match kind {
        BombKind::PaxLocal => (tar::EntryType::XHeader, "././@PaxHeader", false),
        BombKind::PaxGlobal => (tar::EntryType::XGlobalHeader, "././@PaxHeader", false),
        BombKind::GnuLongName => (tar::EntryType::GNULongName, "././@LongLink", true),
        BombKind::GnuLongLink => (tar::EntryType::GNULongLink, "././@LongLink", true),
    };
    out.write_all(header(name, entry_type, claimed, gnu)?.as_bytes())?;
    // The payload: one PAX record `<len> path=aaa…\n`, or a NUL-terminated name.
    let prefix = match kind {
        BombKind::PaxLocal | BombKind::PaxGlobal => format!("{claimed} path="),
        BombKind::GnuLongName | BombKind::GnuLongLink => String::new(),
    };
    let last = if gnu { b"\0" } else { b"\n" };
    out.write_all(prefix.as_bytes())?;
    let mut left = claimed.saturating_sub(prefix.len() as u64 + 1);
    let fill = vec![b'a'; 1 << 20];
    while left > 0 {
        let n = left.min(fill.len() as u64) as usize;
        out.write_all(&fill[..n])?;
        left -= n as u64;
    }
    out.write_all(last)?;
    pad(&mut out, claimed)?;
    // What the special header describes: a small file (or a symlink for a long link).
    let (ty, data): (tar::EntryType, &[u8]) = match kind {
        BombKind::GnuLongLink => (tar::EntryType::Symlink, b""),
        _ => (tar::EntryType::Regular, b"hello\n"),
    };
    let mut h = header("hello.txt", ty, data.len() as u64, gnu)?;
    if ty == tar::EntryType::Symlink {
        h.set_link_name("target")?;
        h.set_cksum();
    }
    out.write_all(h.as_bytes())?;
    out.write_all(data)?;
    pad(&mut out, data.len() as u64)?;
    out.write_all(&[0; 2 * BLOCK])?;
    out.flush()
}

fn header(name: &str, ty: tar::EntryType, size: u64, gnu: bool) -> std::io::Result<tar::Header> {
    let mut h = if gnu {
        tar::Header::new_gnu()
    } else {
        tar::Header::new_ustar()
    };
    h.set_path(name)?;
    h.set_entry_type(ty);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    Ok(h)
}

fn pad(out: &mut impl Write, len: u64) -> std::io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&vec![0; BLOCK - rem])?;
    }
    Ok(())
}

struct Tee<A, B>(A, B);

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}
