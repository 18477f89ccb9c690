//! Shared test helpers: a tar builder that writes any name (including `..` and absolute
//! ones, which `tar::Builder` refuses), a sandbox with a sentinel outside the root, and a
//! byte-for-byte tree snapshot.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use tar::{EntryType, Header};

/// Builds layers entry by entry. Names and link targets go into PAX records so they
/// survive verbatim.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
        }
    }

    pub fn entry(
        &mut self,
        name: &str,
        etype: EntryType,
        link: Option<&str>,
        mode: u32,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        self.raw_entry(name, etype, link, mode, data, xattrs, None)
    }

    /// A character or block device with real numbers.
    pub fn device(
        &mut self,
        name: &str,
        etype: EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        self.raw_entry(name, etype, None, mode, b"", &[], Some((major, minor)))
    }

    #[allow(clippy::too_many_arguments)]
    fn raw_entry(
        &mut self,
        name: &str,
        etype: EntryType,
        link: Option<&str>,
        mode: u32,
        data: &[u8],
        xattrs: &[(&str, &[u8])],
        dev: Option<(u32, u32)>,
    ) -> &mut Self {
        let keys: Vec<String> = xattrs
            .iter()
            .map(|(k, _)| format!("SCHILY.xattr.{k}"))
            .collect();
        let mut pax: Vec<(&str, &[u8])> = vec![("path", name.as_bytes())];
        if let Some(l) = link {
            pax.push(("linkpath", l.as_bytes()));
        }
        for (k, (_, v)) in keys.iter().zip(xattrs) {
            pax.push((k.as_str(), v));
        }
        let mut records = Vec::new();
        for (k, v) in pax {
            records.extend(pax_record(k, v));
        }
        let mut ph = Header::new_ustar();
        ph.set_path("PaxHeader").unwrap();
        ph.set_entry_type(EntryType::XHeader);
        ph.set_mode(0o644);
        ph.set_size(records.len() as u64);
        ph.set_cksum();
        self.b.append(&ph, &records[..]).unwrap();
        let mut h = Header::new_ustar();
        {
            let u = h.as_ustar_mut().unwrap();
            let n = name.len().min(99);
            u.name[..n].copy_from_slice(&name.as_bytes()[..n]);
            if let Some(l) = link {
                let n = l.len().min(99);
                u.linkname[..n].copy_from_slice(&l.as_bytes()[..n]);
            }
        }
        h.set_entry_type(etype);
        if let Some((major, minor)) = dev {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_mode(mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.entry(name, EntryType::Directory, None, mode, b"", &[])
    }
    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.entry(name, EntryType::Regular, None, mode, data, &[])
    }
    pub fn symlink(&mut self, target: &str, name: &str) -> &mut Self {
        self.entry(name, EntryType::Symlink, Some(target), 0o777, b"", &[])
    }
    pub fn link(&mut self, target: &str, name: &str) -> &mut Self {
        self.entry(name, EntryType::Link, Some(target), 0o644, b"", &[])
    }
    pub fn whiteout(&mut self, name: &str) -> &mut Self {
        self.file(name, b"", 0o644)
    }
    pub fn build(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// One PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record.
pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// One node of a tree snapshot: everything an escape could change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub data: Vec<u8>,
    pub link: Option<PathBuf>,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

fn kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        "other"
    }
}

/// Every node under `dir` (not following symlinks), keyed by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut work = vec![dir.to_path_buf()];
    while let Some(p) = work.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let k = kind(md.file_type());
        let mut xattrs: Vec<(String, Vec<u8>)> = if k == "symlink" {
            Vec::new()
        } else {
            xattr::list(&p)
                .map(|l| {
                    l.map(|n| {
                        let v = xattr::get(&p, &n).ok().flatten().unwrap_or_default();
                        (n.to_string_lossy().into_owned(), v)
                    })
                    .collect()
                })
                .unwrap_or_default()
        };
        xattrs.sort();
        let node = Node {
            kind: k,
            mode: md.permissions().mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: if k == "dir" {
                (0, 0)
            } else {
                (md.mtime(), md.mtime_nsec())
            },
            data: if k == "file" {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            },
            link: if k == "symlink" {
                Some(std::fs::read_link(&p).unwrap())
            } else {
                None
            },
            xattrs,
        };
        if k == "dir" {
            for e in std::fs::read_dir(&p).unwrap() {
                work.push(e.unwrap().path());
            }
        }
        out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), node);
    }
    out
}

/// A temporary directory holding `root/` (where layers go) and `etc/`, a sentinel next to
/// it that `root/../etc` reaches: an escape changes it.
pub struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
    before: BTreeMap<PathBuf, Node>,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("etc");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        for (name, data, mode) in [
            ("unbroken", &b"outside"[..], 0o644),
            ("passwd", b"outside passwd", 0o644),
            ("emptied", b"notempty", 0o644),
            ("whitedout", b"outside whiteout", 0o644),
            ("perm400", b"...", 0o400),
            ("also-exists-outside-root", b"...", 0o640),
        ] {
            let p = outside.join(name);
            std::fs::write(&p, data).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::create_dir(outside.join("dir")).unwrap();
        std::fs::write(outside.join("dir/inner"), b"inner").unwrap();
        let before = snapshot(&outside);
        Sandbox {
            tmp,
            root,
            outside,
            before,
        }
    }

    /// Panics when anything in the sentinel changed.
    pub fn assert_sentinel_unchanged(&self) {
        let after = snapshot(&self.outside);
        assert_eq!(self.before, after, "sentinel outside the root changed");
        // Nothing new appeared next to root either.
        let names: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(
            names,
            vec!["etc".to_string(), "root".to_string()],
            "new files next to root"
        );
    }
}

/// `stat` of `p` resolved inside `root` as if it were `/` (following symlinks).
pub fn stat_in_root(root: &Path, p: &str) -> std::io::Result<rustix::fs::Stat> {
    let dir = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())?;
    let fd = rustix::fs::openat2(
        &dir,
        p.trim_start_matches('/'),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )?;
    Ok(rustix::fs::fstat(&fd)?)
}

/// Whether two in-root paths name the same inode.
pub fn same_file(root: &Path, a: &str, b: &str) -> bool {
    let (x, y) = (
        stat_in_root(root, a).unwrap(),
        stat_in_root(root, b).unwrap(),
    );
    (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)
}

/// Applies `layer` to `root` with default options.
pub fn apply(layer: &[u8], root: &Path) -> dist_rootfs::Result<dist_rootfs::Applied> {
    dist_rootfs::apply(layer, root, &dist_rootfs::ApplyOptions::default())
}

/// Reads the file at `p`, resolved inside `root`.
pub fn read_in_root(root: &Path, p: &str) -> std::io::Result<Vec<u8>> {
    let dir = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())?;
    let fd = rustix::fs::openat2(
        &dir,
        p.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    )?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut out)?;
    Ok(out)
}
