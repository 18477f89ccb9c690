//! The files of the lease store (layout in [`super`]): blocking functions, run by the async
//! methods on tokio's blocking pool.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use rustix::fs::{FlockOperation, flock};
use serde_json::{Value, json};

use super::{Lease, LeaseInfo, LeaseOptions, Leases, Resource};
use crate::local::lock::is_file_held;
use crate::{Error, Result};

const RECORD: &str = "lease.json";
const RESOURCES: &str = "resources";
const LOCK: &str = "lock";
const GC_LOCK: &str = "gc.lock";
/// Lease directories are hex; names starting with a dot are being created or removed.
const TEMP_PREFIX: &str = ".";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_ctx(path: &Path, what: &str) -> impl FnOnce(io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |e| Error::io(context, e)
}

/// The directory of lease `id`: the hex SHA-256 of the id, so any id is a safe name.
pub(super) fn lease_dir(root: &Path, id: &str) -> PathBuf {
    root.join(crate::sha256_of(id.as_bytes()).digest())
}

fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{what}-{}-{nanos}-{n}", std::process::id())
}

/// Takes `<root>/gc.lock`, shared or exclusive, waiting for it.
pub(super) fn gc_lock(root: &Path, exclusive: bool) -> Result<File> {
    let path = root.join(GC_LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_ctx(&path, "open"))?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&file, op).map_err(|e| Error::io(format!("lock {}", path.display()), e.into()))?;
    Ok(file)
}

/// Creates the lease in a hidden directory, locks it, then renames it into place: others
/// see a complete lease that is already held, or nothing.
pub(super) fn create(root: &Path, opts: LeaseOptions) -> Result<Lease> {
    let id = opts.id.unwrap_or_else(|| unique("lease"));
    if id.is_empty() {
        return Err(Error::InvalidArgument("empty lease id".into()));
    }
    let target = lease_dir(root, &id);
    if target.exists() {
        return Err(Error::AlreadyExists(format!("lease {}", crate::elide(&id))));
    }
    let tmp = root.join(format!("{TEMP_PREFIX}{}", unique("new")));
    let made = (|| {
        std::fs::create_dir(&tmp).map_err(io_ctx(&tmp, "create"))?;
        let created = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        let record = json!({ "id": id, "created_at": created, "labels": opts.labels });
        let record =
            serde_json::to_vec(&record).map_err(|e| Error::io("encode lease", e.into()))?;
        write_new(&tmp.join(RECORD), &record)?;
        write_new(&tmp.join(RESOURCES), b"")?;
        let lock_path = tmp.join(LOCK);
        let lock = File::create(&lock_path).map_err(io_ctx(&lock_path, "create"))?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| Error::io(format!("lock {}", lock_path.display()), e.into()))?;
        // No replacing rename: a lease of the same id created meanwhile wins.
        std::fs::rename(&tmp, &target).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(enotempty()) {
                Error::AlreadyExists(format!("lease {}", crate::elide(&id)))
            } else {
                Error::io(format!("rename to {}", target.display()), e)
            }
        })?;
        Ok(lock)
    })();
    match made {
        Ok(lock) => Ok(Lease {
            id,
            leases: Leases {
                dir: root.to_owned(),
            },
            _lock: lock,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// `ENOTEMPTY`: what `rename(2)` of a directory over a non-empty one fails with.
fn enotempty() -> i32 {
    rustix::io::Errno::NOTEMPTY.raw_os_error()
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_ctx(path, "create"))?;
    f.write_all(bytes).map_err(io_ctx(path, "write"))
}

/// Reads the lease in `dir`; `None` when there is none.
pub(super) fn read(dir: &Path) -> Result<Option<LeaseInfo>> {
    let record_path = dir.join(RECORD);
    let record = match std::fs::read(&record_path) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", record_path.display()), e)),
    };
    let bad = |what: &str| {
        Error::io(
            format!("parse {}", record_path.display()),
            io::Error::new(io::ErrorKind::InvalidData, what.to_owned()),
        )
    };
    let record: Value =
        serde_json::from_slice(&record).map_err(|e| Error::io("parse lease", e.into()))?;
    let id = record["id"]
        .as_str()
        .ok_or_else(|| bad("no id"))?
        .to_owned();
    let created_at = record["created_at"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .ok_or_else(|| bad("no created_at"))?;
    let labels: HashMap<String, String> = match record.get("labels") {
        Some(l) => {
            serde_json::from_value(l.clone()).map_err(|e| Error::io("parse lease", e.into()))?
        }
        None => HashMap::new(),
    };
    let res_path = dir.join(RESOURCES);
    let (text, updated_at) = match std::fs::read(&res_path) {
        Ok(bytes) => {
            let mtime = std::fs::metadata(&res_path).and_then(|m| m.modified()).ok();
            (bytes, mtime.unwrap_or(created_at).max(created_at))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), created_at),
        Err(e) => return Err(Error::io(format!("read {}", res_path.display()), e)),
    };
    Ok(Some(LeaseInfo {
        id,
        created_at,
        updated_at,
        labels,
        held: is_file_held(&dir.join(LOCK))?,
        resources: parse_resources(&text),
    }))
}

/// One JSON `[type, id]` per line; a torn last line (a crash mid-append) is skipped.
fn parse_resources(text: &[u8]) -> Vec<Resource> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let Ok((kind, id)) = serde_json::from_slice::<(String, String)>(line) else {
            continue;
        };
        let r = Resource { kind, id };
        if seen.insert(r.clone()) {
            out.push(r);
        }
    }
    out
}

pub(super) fn list(root: &Path) -> Result<Vec<LeaseInfo>> {
    let entries = std::fs::read_dir(root).map_err(io_ctx(root, "read"))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_ctx(root, "read"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        match read(&entry.path()) {
            Ok(Some(info)) => out.push(info),
            Ok(None) => {}
            Err(e) => tracing::warn!(lease = %name, error = %e, "skipping an unreadable lease"),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Appends to the lease's resources under the shared collection lock. Each line goes out
/// in one `write(2)` on an `O_APPEND` file, so appends from several processes never mix.
pub(super) fn attach(root: &Path, id: &str, resources: &[Resource]) -> Result<()> {
    let mut lines = Vec::new();
    for r in resources {
        let line = serde_json::to_vec(&(&r.kind, &r.id))
            .map_err(|e| Error::io("encode lease resource", e.into()))?;
        lines.extend_from_slice(&line);
        lines.push(b'\n');
    }
    let _shared = gc_lock(root, false)?;
    let dir = lease_dir(root, id);
    let path = dir.join(RESOURCES);
    if !dir.join(RECORD).exists() {
        return Err(Error::NotFound(format!("lease {}", crate::elide(id))));
    }
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(format!("lease {}", crate::elide(id))),
            _ => Error::io(format!("open {}", path.display()), e),
        })?;
    f.write_all(&lines).map_err(io_ctx(&path, "append to"))
}

/// Renames the lease directory out of the way (so a reader never sees half of it), then
/// removes it.
pub(super) fn delete(root: &Path, id: &str) -> Result<()> {
    let dir = lease_dir(root, id);
    let gone = root.join(format!("{TEMP_PREFIX}{}", unique("removing")));
    match std::fs::rename(&dir, &gone) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NotFound(format!("lease {}", crate::elide(id))));
        }
        Err(e) => return Err(Error::io(format!("remove {}", dir.display()), e)),
    }
    std::fs::remove_dir_all(&gone).map_err(io_ctx(&gone, "remove"))?;
    // Leftovers of deletions or creations interrupted by a crash: nothing holds them.
    remove_leftovers(root);
    Ok(())
}

fn remove_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(TEMP_PREFIX) {
            continue;
        }
        // A lease being created is young and locked; only old, unlocked ones go.
        let path = entry.path();
        let old = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age.as_secs() > 60);
        if old && !is_file_held(&path.join(LOCK)).unwrap_or(true) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
