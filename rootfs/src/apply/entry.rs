//! One tar entry translated into what the applier needs: a cleaned path, a kind and the
//! metadata, with everything untrusted checked here.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use tar::EntryType;

use super::limits::{Limit, MAX_PAX_RECORDS, MAX_XATTRS};
use crate::{Error, Result};

/// Prefix that marks a whiteout entry.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS bookkeeping entries (`.wh..wh.plnk`, ...), never applied.
pub(crate) const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The opaque-directory marker.
pub(crate) const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";

/// A path inside the root: normal components only, never `.`, `..` or empty.
pub(crate) type RelPath = Vec<OsString>;

/// Cleans an archive path lexically as if it were absolute: `..` at the top stays at the top,
/// `.` and empty components vanish. `""`, `/` and `..` all mean the root itself.
pub(crate) fn clean(raw: &[u8]) -> RelPath {
    let mut out: RelPath = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    out
}

/// Renders a path for messages, elided: it can be up to a megabyte long.
pub(crate) fn display(path: &[OsString]) -> String {
    let mut s = String::from("/");
    for (i, c) in path.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        s.push_str(&c.to_string_lossy());
    }
    dist_content::elide(&s)
}

/// What an entry creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink(OsString),
    Hardlink(RelPath),
    Fifo,
    Char(u32, u32),
    Block(u32, u32),
    /// `.wh.<name>`: remove `<name>` from the parent.
    Whiteout,
    /// `.wh..wh..opq`: hide what lower layers put in the parent.
    Opaque,
}

/// An entry header as the applier uses it.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    /// The name as written in the archive, elided, for messages.
    pub(crate) name: String,
    /// For whiteouts, the path being removed; for opaque markers, the directory.
    pub(crate) path: RelPath,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: (i64, u32),
    pub(crate) xattrs: Vec<(OsString, Vec<u8>)>,
    pub(crate) size: u64,
}

/// Turns a parsed tar entry into a [`Header`]; `Ok(None)` for entries that are skipped
/// (sockets, AUFS metadata, global headers).
pub(crate) fn parse<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Option<Header>> {
    let raw = entry.path_bytes().into_owned();
    // A name can be a megabyte long (a GNU long name or PAX path): messages quote it elided.
    let name = dist_content::elide(&String::from_utf8_lossy(&raw));
    let bad = |reason: &str| Error::entry(name.clone(), reason);
    if raw.contains(&0) {
        return Err(bad("name contains a NUL byte"));
    }
    let h = entry.header();
    let etype = h.entry_type();
    let old = h.as_old();
    let mode =
        lenient(h.mode().map(u64::from), &old.mode).map_err(|e| bad(&format!("mode: {e}")))?;
    let mode = u32::try_from(mode & 0o7777).unwrap_or(0);
    let uid = lenient(h.uid(), &old.uid).map_err(|e| bad(&format!("uid: {e}")))?;
    let gid = lenient(h.gid(), &old.gid).map_err(|e| bad(&format!("gid: {e}")))?;
    let mtime = lenient(h.mtime(), &old.mtime).map_err(|e| bad(&format!("mtime: {e}")))?;
    let mut mtime = (i64::try_from(mtime).unwrap_or(i64::MAX), 0u32);
    let size = entry.size();
    let mut path = clean(&raw);

    let mut kind = match etype {
        EntryType::Regular | EntryType::Continuous => Kind::File,
        // Old archives mark directories only with a trailing slash on a regular entry.
        EntryType::Directory => Kind::Dir,
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad("symlink without a target"))?
                .into_owned();
            if target.is_empty() || target.contains(&0) {
                return Err(bad("symlink target is empty or contains NUL"));
            }
            Kind::Symlink(OsString::from_vec(target))
        }
        EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| bad("hardlink without a target"))?
                .into_owned();
            let target = clean(&target);
            if target.is_empty() {
                return Err(bad("hardlink to the root directory"));
            }
            Kind::Hardlink(target)
        }
        EntryType::Fifo => Kind::Fifo,
        EntryType::Char | EntryType::Block => {
            let raw = h.as_bytes();
            let major = lenient(
                h.device_major().map(|v| u64::from(v.unwrap_or(0))),
                &raw[329..337],
            )
            .map_err(|e| bad(&format!("device major: {e}")))?;
            let minor = lenient(
                h.device_minor().map(|v| u64::from(v.unwrap_or(0))),
                &raw[337..345],
            )
            .map_err(|e| bad(&format!("device minor: {e}")))?;
            let (major, minor) = (
                u32::try_from(major).unwrap_or(0),
                u32::try_from(minor).unwrap_or(0),
            );
            if etype == EntryType::Char {
                Kind::Char(major, minor)
            } else {
                Kind::Block(major, minor)
            }
        }
        EntryType::XGlobalHeader => return Ok(None),
        other => {
            tracing::info!(entry = %name, kind = ?other, "skipping unsupported tar entry type");
            return Ok(None);
        }
    };
    if kind == Kind::File && raw.ends_with(b"/") {
        kind = Kind::Dir;
    }

    let mut xattrs = Vec::new();
    let (mut records, mut xattr_count) = (0usize, 0usize);
    if let Some(pax) = entry
        .pax_extensions()
        .map_err(|e| Error::corrupt(name.clone(), e))?
    {
        for ext in pax {
            let ext = ext.map_err(|e| Error::corrupt(name.clone(), e))?;
            // Count everything (the header is at most 1 MiB, so this is cheap) to report
            // the real number, but keep nothing past the bounds.
            records += 1;
            let key = ext.key_bytes();
            let attr = key.strip_prefix(b"SCHILY.xattr.");
            xattr_count += usize::from(attr.is_some());
            if records > MAX_PAX_RECORDS || xattr_count > MAX_XATTRS {
                continue;
            }
            if let Some(attr) = attr {
                if attr.is_empty() || attr.contains(&0) {
                    return Err(bad("empty or NUL in xattr name"));
                }
                xattrs.push((
                    OsString::from_vec(attr.to_vec()),
                    ext.value_bytes().to_vec(),
                ));
            } else if key == b"mtime" {
                mtime = parse_pax_time(ext.value_bytes()).ok_or_else(|| bad("bad PAX mtime"))?;
            }
        }
    }
    for (limit, count) in [(Limit::PaxRecords, records), (Limit::Xattrs, xattr_count)] {
        if count as u64 > limit.max() {
            return Err(Error::LimitExceeded {
                limit,
                entry: format!("{name:?}"),
                actual: count as u64,
            });
        }
    }

    // Whiteouts are recognised by the last component only, after cleaning.
    if let Some(last) = path.last() {
        let base = last.as_bytes();
        if base == WHITEOUT_OPAQUE {
            path.pop();
            kind = Kind::Opaque;
        } else if base.starts_with(WHITEOUT_META_PREFIX) {
            tracing::debug!(entry = %name, "skipping AUFS metadata entry");
            return Ok(None);
        } else if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(bad("whiteout of '', '.' or '..' is not allowed"));
            }
            let target = OsString::from_vec(target.to_vec());
            path.pop();
            path.push(target);
            kind = Kind::Whiteout;
        }
    }

    Ok(Some(Header {
        name,
        path,
        kind,
        mode,
        uid,
        gid,
        mtime,
        xattrs,
        size,
    }))
}

/// A numeric header field; an all-blank field reads as 0, as GNU tar and Go read it.
fn lenient(parsed: std::io::Result<u64>, raw: &[u8]) -> std::io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        r => r,
    }
}

/// Parses a PAX time (`seconds[.fraction]`, possibly negative).
fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let d = c.to_digit(10)?;
        nanos += d * 10u32.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: &RelPath) -> String {
        display(p)
    }

    #[test]
    fn clean_keeps_dotdot_at_the_top() {
        assert_eq!(s(&clean(b"../../etc/passwd")), "/etc/passwd");
        assert_eq!(s(&clean(b"/a/./b/../c/")), "/a/c");
        assert_eq!(s(&clean(b"dne/../.wh.etc")), "/.wh.etc");
        assert!(clean(b"..").is_empty());
        assert!(clean(b"").is_empty());
        assert!(clean(b"./").is_empty());
    }

    #[test]
    fn pax_time_parses_fractions_and_negatives() {
        assert_eq!(parse_pax_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time(b"7"), Some((7, 0)));
        assert_eq!(parse_pax_time(b"-1.5"), Some((-2, 500_000_000)));
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
