//! Metadata comes out exact whichever way the applier takes to set it: files created with
//! their final mode (when the umask leaves it intact and no special bit is involved) or
//! chmodded after, chowns skipped when the creator already is the owner, directories
//! kept open for the entries inside them. The umask is process-wide, so this file holds
//! one test that sets it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Layer;
use dist_rootfs::{ApplyOptions, apply};
use rustix::fs::Mode;

/// (path, is_dir, mode, mtime) of every entry of [`layer`].
const ENTRIES: &[(&str, bool, u32, u64)] = &[
    ("usr", true, 0o755, 1_000_000_001),
    ("usr/bin", true, 0o755, 1_000_000_002),
    ("usr/bin/su", false, 0o4755, 1_000_000_003),
    ("usr/bin/wall", false, 0o2755, 1_000_000_004),
    ("usr/bin/ls", false, 0o755, 1_000_000_005),
    ("usr/lib", true, 0o750, 1_000_000_006),
    ("usr/lib/a.py", false, 0o644, 1_000_000_007),
    ("usr/lib/b.py", false, 0o640, 1_000_000_008),
    ("usr/lib/secret", false, 0o600, 1_000_000_009),
    ("usr/lib/none", false, 0o000, 1_000_000_010),
    ("usr/lib/world", false, 0o666, 1_000_000_011),
    ("usr/lib/sub", true, 0o700, 1_000_000_012),
    ("usr/lib/sub/f", false, 0o644, 1_000_000_013),
    ("tmp", true, 0o1777, 1_000_000_014),
    ("tmp/sticky-file", false, 0o1644, 1_000_000_015),
    ("shared", true, 0o2775, 1_000_000_016),
    ("shared/f", false, 0o664, 1_000_000_017),
    ("shared/d", true, 0o755, 1_000_000_018),
    ("ro", true, 0o555, 1_000_000_019),
    ("ro/f", false, 0o444, 1_000_000_020),
];

fn layer(uid: u64, gid: u64) -> Vec<u8> {
    let mut l = Layer::new();
    l.uid = uid;
    l.gid = gid;
    for (p, is_dir, mode, mtime) in ENTRIES {
        l.mtime = *mtime;
        if *is_dir {
            l.dir(p, *mode);
        } else {
            l.file(p, p.as_bytes(), *mode);
        }
        if *p == "usr/lib/a.py" {
            l.mtime = 1_000_000_100;
            l.entry(
                "usr/lib/attr",
                tar::EntryType::Regular,
                None,
                0o644,
                b"x",
                &[("user.k", b"v")],
            );
            l.entry(
                "usr/lib/attrdir",
                tar::EntryType::Directory,
                None,
                0o755,
                b"",
                &[("user.d", b"1")],
            );
            l.symlink("a.py", "usr/lib/link");
        }
    }
    l.build()
}

fn check(root: &Path, owner: (u32, u32), what: &str) {
    for (p, is_dir, mode, mtime) in ENTRIES {
        let m = std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!(m.is_dir(), *is_dir, "{what}: {p}");
        assert_eq!(
            m.permissions().mode() & 0o7777,
            *mode,
            "{what}: mode of {p}"
        );
        assert_eq!((m.uid(), m.gid()), owner, "{what}: owner of {p}");
        assert_eq!(m.mtime() as u64, *mtime, "{what}: mtime of {p}");
        assert_eq!(m.mtime_nsec(), 0, "{what}: mtime of {p}");
        if !is_dir {
            assert_eq!(std::fs::read(root.join(p)).unwrap(), p.as_bytes());
        }
    }
    for p in ["usr/lib/attr", "usr/lib/attrdir", "usr/lib/link"] {
        let m = std::fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), owner, "{what}: owner of {p}");
        assert_eq!(m.mtime(), 1_000_000_100, "{what}: mtime of {p}");
    }
    assert_eq!(
        xattr::get(root.join("usr/lib/attr"), "user.k")
            .unwrap()
            .as_deref(),
        Some(&b"v"[..]),
        "{what}"
    );
    assert_eq!(
        xattr::get(root.join("usr/lib/attrdir"), "user.d")
            .unwrap()
            .as_deref(),
        Some(&b"1"[..]),
        "{what}"
    );
}

#[test]
fn modes_owners_times_and_xattrs_are_exact_under_any_umask() {
    let root_user = rustix::process::geteuid().is_root();
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let mut owners = vec![(me.0 as u64, me.1 as u64)];
    if root_user {
        owners.push((1234, 5678));
    }
    for umask in [0o000, 0o022, 0o027, 0o077] {
        rustix::process::umask(Mode::from_raw_mode(umask));
        for &(uid, gid) in &owners {
            let what = format!("umask {umask:03o}, owner {uid}:{gid}");
            let tmp = tempfile::tempdir().unwrap();
            let opts = ApplyOptions::default().same_owner(root_user);
            apply(&layer(uid, gid)[..], tmp.path(), &opts).unwrap();
            let owner = if root_user {
                (uid as u32, gid as u32)
            } else {
                me
            };
            check(tmp.path(), owner, &what);
            // Again over itself: every entry now replaces or re-declares one (as root:
            // `ro` is read-only now).
            if root_user {
                apply(&layer(uid, gid)[..], tmp.path(), &opts).unwrap();
                check(tmp.path(), owner, &format!("{what}, applied twice"));
            }
            // `ro` is read-only for an unprivileged owner: let the cleanup in.
            for p in ["ro", "usr/lib/sub"] {
                let _ = std::fs::set_permissions(
                    tmp.path().join(p),
                    std::fs::Permissions::from_mode(0o755),
                );
            }
        }
    }
    rustix::process::umask(Mode::from_raw_mode(0o022));
}
