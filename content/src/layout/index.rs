//! Reading and rewriting a layout's `oci-layout` and `index.json`.
//!
//! Rewrites go through `serde_json::Value`, so fields this crate does not model (top-level
//! annotations, a `subject`, future fields) survive a tag. Each rewrite holds an exclusive
//! `flock` on the layout directory from read to rename: writers in other processes wait,
//! readers never do (they see the old file or the new one).

use std::fs::File;
use std::io;
use std::path::Path;

use oci_spec::image::Descriptor;
use rustix::fs::{FlockOperation, flock};
use serde_json::{Map, Value};

use super::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, INDEX_FILE, LAYOUT_VERSION, OCI_LAYOUT_FILE,
};
use crate::{Elided, Error, ErrorKind, Result};

/// The largest `index.json` read: far above any real layout, small enough for memory.
const MAX_INDEX_SIZE: u64 = 64 << 20;

/// `index.json` or `oci-layout` is not what the layout spec says it is.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
struct Malformed {
    path: String,
    reason: String,
    #[source]
    source: Option<serde_json::Error>,
}

fn malformed(path: &Path, reason: impl Into<String>, source: Option<serde_json::Error>) -> Error {
    Error::other(
        ErrorKind::InvalidArgument,
        Malformed {
            path: Elided(&path.display().to_string()).to_string(),
            reason: reason.into(),
            source,
        },
    )
}

/// The names an `index.json` entry carries: its `org.opencontainers.image.ref.name` (a
/// tag, or a full reference) and containerd's `io.containerd.image.name`.
pub fn ref_names(desc: &Descriptor) -> (Option<&str>, Option<&str>) {
    let get = |k: &str| {
        desc.annotations()
            .as_ref()
            .and_then(|a| a.get(k))
            .map(String::as_str)
    };
    (get(ANNOTATION_REF_NAME), get(ANNOTATION_IMAGE_NAME))
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
        .len();
    if len > MAX_INDEX_SIZE {
        return Err(malformed(
            path,
            format!("{len} bytes, more than the {MAX_INDEX_SIZE} allowed"),
            None,
        ));
    }
    let mut out = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, MAX_INDEX_SIZE), &mut out)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(out)
}

/// Checks `oci-layout`: `NotFound` when absent, `InvalidArgument` when it names a version
/// other than 1.0.0.
pub(super) fn check_version(dir: &Path) -> Result<()> {
    let path = dir.join(OCI_LAYOUT_FILE);
    let bytes = match read_small(&path) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Err(Error::other(
                ErrorKind::NotFound,
                format!(
                    "{}: not an OCI image layout (no {OCI_LAYOUT_FILE} file)",
                    Elided(&dir.display().to_string())
                ),
            ));
        }
        other => other?,
    };
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| malformed(&path, "not JSON", Some(e)))?;
    match value.get("imageLayoutVersion").and_then(Value::as_str) {
        Some(LAYOUT_VERSION) => Ok(()),
        Some(v) => Err(malformed(
            &path,
            format!(
                "layout version {:?}, expected {LAYOUT_VERSION}",
                Elided(v).to_string()
            ),
            None,
        )),
        None => Err(malformed(&path, "no imageLayoutVersion", None)),
    }
}

/// Writes `oci-layout` and an empty `index.json` where missing; checks an existing
/// `oci-layout`.
pub(super) fn init(dir: &Path) -> Result<()> {
    if dir.join(OCI_LAYOUT_FILE).exists() {
        check_version(dir)?;
    } else {
        let layout = format!(r#"{{"imageLayoutVersion":"{LAYOUT_VERSION}"}}"#);
        crate::local::atomic::write_files(dir, &[(OCI_LAYOUT_FILE, layout.as_bytes())])?;
    }
    if !dir.join(INDEX_FILE).exists() {
        let _lock = lock(dir)?;
        if !dir.join(INDEX_FILE).exists() {
            write_index(dir, &empty_index())?;
        }
    }
    Ok(())
}

fn empty_index() -> Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    })
}

fn read_index(dir: &Path) -> Result<Value> {
    let path = dir.join(INDEX_FILE);
    let bytes = read_small(&path)?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| malformed(&path, "not JSON", Some(e)))?;
    if !value.is_object() {
        return Err(malformed(&path, "not a JSON object", None));
    }
    Ok(value)
}

fn write_index(dir: &Path, index: &Value) -> Result<()> {
    let bytes = serde_json::to_vec(index)
        .map_err(|e| Error::io("encode index.json", io::Error::other(e)))?;
    crate::local::atomic::write_files(dir, &[(INDEX_FILE, &bytes)])
}

/// The entries of `index.json`, parsed as descriptors.
pub(super) fn read_entries(dir: &Path) -> Result<Vec<Descriptor>> {
    let path = dir.join(INDEX_FILE);
    let index = read_index(dir)?;
    match index.get("manifests") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(m) => serde_json::from_value(m.clone())
            .map_err(|e| malformed(&path, "manifests are not descriptors", Some(e))),
    }
}

/// The descriptor `name` picks among `entries` (see `LayoutStore::resolve`).
pub(super) fn resolve(entries: &[Descriptor], name: &str, dir: &Path) -> Result<Descriptor> {
    if name.is_empty() {
        return match entries {
            [only] => Ok(only.clone()),
            [] => Err(Error::NotFound(format!(
                "any image in {}",
                Elided(&dir.display().to_string())
            ))),
            _ => Err(Error::InvalidArgument(format!(
                "{} holds {} images: name one by tag",
                Elided(&dir.display().to_string()),
                entries.len()
            ))),
        };
    }
    let by = |pick: fn(&Descriptor) -> Option<&str>| {
        entries
            .iter()
            .rev()
            .find(|d| pick(d) == Some(name))
            .cloned()
    };
    by(|d| ref_names(d).0)
        .or_else(|| by(|d| ref_names(d).1))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "tag {:?} in {}",
                Elided(name).to_string(),
                Elided(&dir.display().to_string())
            ))
        })
}

/// Refuses tags no tool could round-trip.
pub(super) fn check_tag(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "tag {:?}: empty or holds control characters",
            Elided(name).to_string()
        )));
    }
    Ok(())
}

/// Takes the layout's update lock: an exclusive `flock` on the directory itself (no extra
/// file in the layout), waiting for other writers. Released on drop or process exit.
fn lock(dir: &Path) -> Result<File> {
    let file = File::open(dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    flock(&file, FlockOperation::LockExclusive)
        .map_err(|e| Error::io(format!("lock {}", dir.display()), io::Error::from(e)))?;
    Ok(file)
}

/// Reads `index.json`, lets `f` change its `manifests`, and writes it back, all under the
/// layout's lock.
pub(super) fn update(dir: &Path, f: impl FnOnce(&mut Vec<Value>) -> Result<()>) -> Result<()> {
    let _lock = lock(dir)?;
    let path = dir.join(INDEX_FILE);
    let mut index = match read_index(dir) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => empty_index(),
        other => other?,
    };
    let Some(obj) = index.as_object_mut() else {
        return Err(malformed(&path, "not a JSON object", None));
    };
    let mut manifests = match obj.remove("manifests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(malformed(&path, "manifests is not an array", None)),
    };
    f(&mut manifests)?;
    obj.insert("manifests".into(), Value::Array(manifests));
    write_index(dir, &index)
}

fn tag_of(entry: &Value) -> Option<&str> {
    entry
        .get("annotations")
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .and_then(Value::as_str)
}

/// Drops the entries tagged `name` and appends `desc` tagged `name`.
pub(super) fn set_tag(entries: &mut Vec<Value>, name: &str, desc: Descriptor) -> Result<()> {
    entries.retain(|e| tag_of(e) != Some(name));
    let mut value = serde_json::to_value(&desc)
        .map_err(|e| Error::io("encode descriptor", io::Error::other(e)))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(Error::InvalidArgument("descriptor is not an object".into()));
    };
    let annotations = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(ANNOTATION_REF_NAME.into(), Value::String(name.to_owned()));
    }
    entries.push(value);
    Ok(())
}

/// Drops the entries tagged `name`; `NotFound` when there is none.
pub(super) fn remove_tag(entries: &mut Vec<Value>, name: &str) -> Result<()> {
    let before = entries.len();
    entries.retain(|e| tag_of(e) != Some(name));
    if entries.len() == before {
        return Err(Error::NotFound(format!(
            "tag {:?}",
            Elided(name).to_string()
        )));
    }
    Ok(())
}
