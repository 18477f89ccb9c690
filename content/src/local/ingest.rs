//! The files of one in-progress ingest, in containerd's layout:
//! `ingest/<sha256-of-ref>/{ref,startedat,updatedat,total,data}`.
//!
//! We add two files containerd ignores: `lock` (see [`super::lock`]) and `expected` (the
//! expected digest, when the writer was told, so [`Status::expected`] survives a resume).

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use oci_spec::image::Digest;

use super::atomic;
use crate::{Error, Result, Status};

pub(crate) const DATA: &str = "data";
const REF: &str = "ref";
const STARTED_AT: &str = "startedat";
const UPDATED_AT: &str = "updatedat";
const TOTAL: &str = "total";
const EXPECTED: &str = "expected";

/// The directory name of an ingest: the hex SHA-256 of its ref, as containerd names it.
pub(crate) fn dir_name(reference: &str) -> String {
    crate::sha256_of(reference.as_bytes()).digest().to_owned()
}

/// What a new writer records about its ingest.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) reference: String,
    pub(crate) total: Option<u64>,
    pub(crate) expected: Option<Digest>,
    pub(crate) started_at: SystemTime,
}

fn ctx(path: &Path, what: &str) -> String {
    format!("{what} {}", path.display())
}

/// Reads a small metadata file; `None` when it does not exist.
fn read_small(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(ctx(&path, "read"), e)),
    }
}

fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Parses a containerd timestamp file; containerd writes Go's RFC 3339 text. Times we cannot
/// parse (a non-UTC offset) fall back to the file's modification time.
fn read_time(dir: &Path, name: &str) -> Result<Option<SystemTime>> {
    let Some(text) = read_small(dir, name)? else {
        return Ok(None);
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(text.trim()) {
        return Ok(Some(t));
    }
    let path = dir.join(name);
    let md = std::fs::metadata(&path).map_err(|e| Error::io(ctx(&path, "stat"), e))?;
    Ok(md.modified().ok())
}

/// Records a new ingest's metadata (overwriting any left from a discarded attempt). Each
/// file is replaced atomically and synced, so a crash leaves every file whole.
pub(crate) fn write_meta(dir: &Path, meta: &Meta) -> Result<()> {
    let started = format_time(meta.started_at);
    let total = meta.total.map(|t| t.to_string());
    let mut files: Vec<(&str, &[u8])> = vec![
        (REF, meta.reference.as_bytes()),
        (STARTED_AT, started.as_bytes()),
        (UPDATED_AT, started.as_bytes()),
    ];
    match &total {
        Some(total) => files.push((TOTAL, total.as_bytes())),
        None => remove_if_exists(&dir.join(TOTAL))?,
    }
    match &meta.expected {
        Some(d) => files.push((EXPECTED, d.as_ref().as_bytes())),
        None => remove_if_exists(&dir.join(EXPECTED))?,
    }
    atomic::write_files(dir, &files)
}

/// Records that the ingest was touched at `now` (atomically, like [`write_meta`]).
pub(crate) fn touch_updated(dir: &Path, now: SystemTime) -> Result<()> {
    atomic::write_files(dir, &[(UPDATED_AT, format_time(now).as_bytes())])
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(ctx(path, "remove"), e)),
    }
}

/// The expected digest an ingest's writer recorded, if any (cheaper than [`read_meta`] for
/// a follower looking for the ingest of one digest).
pub(crate) fn read_expected(dir: &Path) -> Result<Option<Digest>> {
    Ok(read_small(dir, EXPECTED)?.and_then(|d| Digest::from_str(d.trim()).ok()))
}

/// Reads the stored metadata; `None` when the directory holds no ingest (no `ref` file).
pub(crate) fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    let Some(reference) = read_small(dir, REF)? else {
        return Ok(None);
    };
    let total = match read_small(dir, TOTAL)? {
        Some(t) => t.trim().parse::<u64>().ok().filter(|t| *t > 0),
        None => None,
    };
    let expected = read_small(dir, EXPECTED)?.and_then(|d| Digest::from_str(d.trim()).ok());
    let started_at = read_time(dir, STARTED_AT)?.unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Some(Meta {
        reference,
        total,
        expected,
        started_at,
    }))
}

/// The status of the ingest in `dir`: its metadata plus the size of `data` (the offset a
/// resuming writer starts at). `None` when there is no ingest there.
pub(crate) fn read_status(dir: &Path) -> Result<Option<Status>> {
    let Some(meta) = read_meta(dir)? else {
        return Ok(None);
    };
    let data = dir.join(DATA);
    let (offset, data_mtime) = match std::fs::metadata(&data) {
        Ok(md) => (md.len(), md.modified().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (0, None),
        Err(e) => return Err(Error::io(ctx(&data, "stat"), e)),
    };
    // Writes touch `data`'s mtime without rewriting `updatedat`, so take the later one.
    let updated_at = match (read_time(dir, UPDATED_AT)?, data_mtime) {
        (Some(a), Some(b)) => a.max(b),
        (a, b) => a.or(b).unwrap_or(meta.started_at),
    };
    Ok(Some(Status {
        reference: meta.reference,
        offset,
        total: meta.total,
        expected: meta.expected,
        started_at: meta.started_at,
        updated_at,
    }))
}

/// Names of ingest directories being removed start with this (ingest directories are hex,
/// so never do).
const REMOVING: &str = ".removing-";

static REMOVING_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the ingest directory `dir` (held under its lock), first renaming it out of the
/// way: a writer waiting for the ref may create `lock` in `dir` at any moment, which would
/// make removing files in place fail ("directory not empty") or delete the new writer's
/// files. Once renamed, waiters find a fresh directory. `Ok` when `dir` is already gone;
/// a failure to delete the renamed copy is only logged (it holds no ingest any more, and
/// [`remove_leftovers`] retries it).
pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    let Some(root) = dir.parent() else {
        return Err(Error::InvalidArgument(format!(
            "{}: no parent",
            dir.display()
        )));
    };
    let n = REMOVING_COUNTER.fetch_add(1, Ordering::Relaxed);
    let gone = root.join(format!("{REMOVING}{}-{n}", std::process::id()));
    match std::fs::rename(dir, &gone) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(ctx(dir, "remove"), e)),
    }
    if let Err(e) = std::fs::remove_dir_all(&gone) {
        tracing::warn!(dir = %gone.display(), error = %e, "could not delete a removed ingest");
    }
    Ok(())
}

/// Deletes what [`remove_dir`] could not (best effort).
pub(crate) fn remove_leftovers(ingest_root: &Path) {
    let Ok(entries) = std::fs::read_dir(ingest_root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(REMOVING) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Lists the ingest directories under `ingest_root` (empty when it does not exist),
/// leaving out those being removed.
pub(crate) fn list_dirs(ingest_root: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(ingest_root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(ctx(ingest_root, "read"), e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(ctx(ingest_root, "read"), e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && !entry.file_name().to_string_lossy().starts_with(REMOVING) {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}
