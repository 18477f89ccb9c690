//! umoci's extraction cases (oci/layer/tar_extract_test.go), rewritten: path sanitising,
//! symlink scoping, parent creation, whiteouts and hardlinks. Each also checks that the
//! sentinel next to the root is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::{Layer, Sandbox, read_in_root};

fn file_is(root: &Path, p: &str, data: &[u8]) {
    assert_eq!(read_in_root(root, p).unwrap(), data, "content of {p}");
}

fn lexists(root: &Path, p: &str) -> bool {
    std::fs::symlink_metadata(root.join(p.trim_start_matches('/'))).is_ok()
}

/// TestUnpackEntrySanitiseScoping: `/..` and `..` prefixes land inside the root.
#[test]
fn umoci_sanitise_scoping() {
    for prefix in ["/..", ".."] {
        let sb = Sandbox::new();
        let name = format!("{prefix}/etc/passwd");
        common::apply(
            &Layer::new()
                .file(&name, b"container content", 0o644)
                .build(),
            &sb.root,
        )
        .unwrap();
        file_is(&sb.root, "/etc/passwd", b"container content");
        sb.assert_sentinel_unchanged();
    }
}

/// TestUnpackEntrySymlinkScoping: an existing symlink to `/`, `/..`, a long `../` chain or
/// `..` used as a parent resolves to the root.
#[test]
fn umoci_symlink_scoping() {
    for target in [
        "/",
        "/../",
        "/../../../../../../../../../../../../../../../",
        "/./.././.././.././.././.././.././.././.././../",
        "..",
    ] {
        let sb = Sandbox::new();
        std::fs::create_dir(sb.root.join("etc")).unwrap();
        symlink(target, sb.root.join("link")).unwrap();
        common::apply(
            &Layer::new()
                .file("link/etc/passwd", b"container content", 0o644)
                .build(),
            &sb.root,
        )
        .unwrap();
        file_is(&sb.root, "/etc/passwd", b"container content");
        sb.assert_sentinel_unchanged();
    }
}

/// TestUnpackEntryParentDir: missing parents are created.
#[test]
fn umoci_missing_parents_are_created() {
    let sb = Sandbox::new();
    common::apply(
        &Layer::new()
            .file("a/b/c/file", b"creating parentdirs", 0o644)
            .build(),
        &sb.root,
    )
    .unwrap();
    file_is(&sb.root, "a/b/c/file", b"creating parentdirs");
}

/// TestUnpackEntryWhiteout: files and directories (hidden or not, in the root or below)
/// are removed, and the parent directory's times are left as they were.
#[test]
fn umoci_whiteout_removes_and_keeps_parent_times() {
    use std::os::unix::fs::MetadataExt;
    for (path, dir) in [
        ("rootpath", false),
        (".hiddenroot", false),
        ("some/path/file", false),
        ("another/path/.hiddenfile", false),
        ("rootpath", true),
        (".hiddenroot", true),
        ("some/path/dir", true),
        ("another/path/.hiddendir", true),
    ] {
        let sb = Sandbox::new();
        let full = sb.root.join(path);
        let parent = full.parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&parent).unwrap();
        if dir {
            std::fs::create_dir(&full).unwrap();
            std::fs::write(full.join("file1"), b"v").unwrap();
            std::fs::create_dir(full.join(".subdir")).unwrap();
            std::fs::write(full.join(".subdir/file3"), b"v").unwrap();
        } else {
            std::fs::write(&full, b"some value").unwrap();
        }
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 789,
                tv_nsec: 111,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 123,
                tv_nsec: 456,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &parent,
            &times,
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        let (d, f) = path.rsplit_once('/').map_or(("", path), |(d, f)| (d, f));
        let wh = if d.is_empty() {
            format!(".wh.{f}")
        } else {
            format!("{d}/.wh.{f}")
        };
        common::apply(&Layer::new().whiteout(&wh).build(), &sb.root).unwrap();
        assert!(!lexists(&sb.root, path), "{path} not removed");
        let m = std::fs::metadata(&parent).unwrap();
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            (123, 456),
            "{path}: parent mtime changed"
        );
        assert_eq!(
            (m.atime(), m.atime_nsec()),
            (789, 111),
            "{path}: parent atime changed"
        );
        sb.assert_sentinel_unchanged();
    }
}

/// TestUnpackHardlink: hardlinks to a file and to a symlink share their inodes, and a
/// hardlink entry's owner is not applied to the inode it links to.
#[test]
fn umoci_hardlinks_to_files_and_symlinks() {
    use std::os::unix::fs::MetadataExt;
    let sb = Sandbox::new();
    let mut l = Layer::new();
    l.file("regular", b"content", 0o644);
    l.uid = 1337;
    l.gid = 2020;
    l.link("/regular", "hard link");
    l.uid = 0;
    l.gid = 0;
    l.symlink("../../../regular", "link");
    l.uid = 1337;
    l.link("../../../link", "hard link to symlink");
    common::apply(&l.build(), &sb.root).unwrap();
    let md = |p: &str| std::fs::symlink_metadata(sb.root.join(p)).unwrap();
    assert_eq!(md("hard link").ino(), md("regular").ino());
    assert_eq!(md("hard link to symlink").ino(), md("link").ino());
    assert_ne!(md("regular").ino(), md("link").ino());
    assert_eq!(
        std::fs::read_link(sb.root.join("hard link to symlink")).unwrap(),
        Path::new("../../../regular")
    );
    assert_eq!((md("regular").uid(), md("regular").gid()), (0, 0));
    assert_eq!((md("link").uid(), md("link").gid()), (0, 0));
    sb.assert_sentinel_unchanged();
}
