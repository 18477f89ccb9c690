//! Mapping layer uids/gids to host ids, for unpacking into a user namespace.

use crate::{Error, Result};

/// One contiguous range of ids: `container..container+size` maps to `host..host+size`,
/// as in `/proc/<pid>/uid_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the container (as written in the layer).
    pub container: u32,
    /// The host id `container` maps to.
    pub host: u32,
    /// How many ids the range covers.
    pub size: u32,
}

/// Uid and gid mappings applied to every entry's owner; an id outside every range is an
/// error naming the entry, never silently owned by root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    /// Uid ranges.
    pub uids: Vec<IdRange>,
    /// Gid ranges.
    pub gids: Vec<IdRange>,
}

impl IdMap {
    /// A map that shifts every id in `0..size` by `host` (the common rootless setup).
    pub fn shift(host: u32, size: u32) -> Self {
        let r = IdRange {
            container: 0,
            host,
            size,
        };
        IdMap {
            uids: vec![r],
            gids: vec![r],
        }
    }

    /// Maps a layer uid to a host uid.
    pub fn uid(&self, id: u64) -> Option<u32> {
        map(&self.uids, id)
    }

    /// Maps a layer gid to a host gid.
    pub fn gid(&self, id: u64) -> Option<u32> {
        map(&self.gids, id)
    }
}

fn map(ranges: &[IdRange], id: u64) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(u64::from(r.container))?;
        (off < u64::from(r.size)).then(|| u32::try_from(u64::from(r.host) + off).ok())?
    })
}

/// Resolves an entry's (uid, gid) through an optional map.
pub(crate) fn owner(map: Option<&IdMap>, uid: u64, gid: u64, entry: &str) -> Result<(u32, u32)> {
    let (u, g) = match map {
        Some(m) => (m.uid(uid), m.gid(gid)),
        None => (u32::try_from(uid).ok(), u32::try_from(gid).ok()),
    };
    match (u, g) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => Err(Error::entry(
            entry,
            format!("owner {uid}:{gid} is outside the id mapping"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_maps_inside_and_rejects_outside() {
        let m = IdMap::shift(100_000, 65_536);
        assert_eq!(m.uid(0), Some(100_000));
        assert_eq!(m.gid(65_535), Some(165_535));
        assert_eq!(m.uid(65_536), None);
        assert!(owner(Some(&m), 70_000, 0, "x").is_err());
        assert_eq!(owner(None, 5, 6, "x").unwrap(), (5, 6));
    }
}
