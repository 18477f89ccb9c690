//! Every case of containerd's `TestBreakouts` (pkg/archive/tar_test.go), rewritten: each
//! layer runs twice, once as containerd wrote it (absolute targets name `/etc` inside the
//! root; containerd's validator checks the in-root result) and once with absolute targets
//! pointing at a real sentinel directory outside the root. Both runs check the sentinel is
//! byte-for-byte unchanged; `..`/`.` whiteouts must be rejected as invalid.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::{Layer, Sandbox, read_in_root, same_file, stat_in_root};
use dist_rootfs::ErrorKind;

enum Expect {
    /// Applies; then this check holds inside the root.
    Ok(fn(&Path)),
    /// Rejected as an invalid archive.
    Invalid,
    /// Rejected as an invalid archive where containerd accepts it: containerd resolves
    /// symlink targets lexically, the kernel (and so our `openat2`) needs every component
    /// to exist. Nothing escapes either way.
    InvalidUnlikeContainerd,
}

struct Case {
    /// Prepares the root before the layer (containerd's `apply`), given the `/etc` to use.
    pre: fn(&Path, &str),
    /// Builds the layer, given the absolute path standing for `/etc`.
    layer: fn(&str) -> Vec<u8>,
    expect: Expect,
}

fn none(_: &Path, _: &str) {}

fn run(case: Case) {
    // 1. As containerd wrote it.
    let sb = Sandbox::new();
    (case.pre)(&sb.root, "/etc");
    let res = common::apply(&(case.layer)("/etc"), &sb.root);
    match (&case.expect, res) {
        (Expect::Ok(check), Ok(_)) => check(&sb.root),
        (Expect::Ok(_), Err(e)) => panic!("apply failed: {e}"),
        (Expect::Invalid | Expect::InvalidUnlikeContainerd, Err(e)) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}")
        }
        (Expect::Invalid | Expect::InvalidUnlikeContainerd, Ok(_)) => {
            panic!("archive accepted, expected it rejected")
        }
    }
    sb.assert_sentinel_unchanged();

    // 2. With every absolute target aimed at the real sentinel: whatever the outcome,
    //    nothing outside the root may change.
    let sb = Sandbox::new();
    let out = sb.outside.to_str().unwrap().to_owned();
    (case.pre)(&sb.root, &out);
    let _ = common::apply(&(case.layer)(&out), &sb.root);
    sb.assert_sentinel_unchanged();
}

fn write(root: &Path, p: &str, data: &[u8]) {
    let p = root.join(p.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

fn file_is(root: &Path, p: &str, data: &[u8]) {
    assert_eq!(read_in_root(root, p).unwrap(), data, "content of {p}");
}

fn unbroken(root: &Path) {
    file_is(root, "/etc/unbroken", b"unbroken");
}

fn passwd_linked(root: &Path, link: &str) {
    assert!(
        same_file(root, link, "/etc/passwd"),
        "{link} is not /etc/passwd"
    );
}

fn lexists(root: &Path, p: &str) -> bool {
    std::fs::symlink_metadata(root.join(p.trim_start_matches('/'))).is_ok()
}

fn etc_passwd(e: &str) -> String {
    format!("{e}/passwd")
}

#[test]
fn symlink_absolute() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o755)
                .symlink(e, "localetc")
                .file("/localetc/unbroken", b"unbroken", 0o644)
                .build()
        },
        expect: Expect::Ok(unbroken),
    });
}

#[test]
fn symlink_up_and_out() {
    run(Case {
        pre: none,
        layer: |e| {
            let t = if e == "/etc" {
                "/dummy/../etc".to_string()
            } else {
                format!("/dummy/../..{e}")
            };
            Layer::new()
                .dir("etc", 0o755)
                .dir("dummy", 0o755)
                .symlink(&t, "localetc")
                .file("/localetc/unbroken", b"unbroken", 0o644)
                .build()
        },
        expect: Expect::Ok(unbroken),
    });
}

#[test]
fn symlink_multiple_absolute() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o755)
                .dir("dummy", 0o755)
                .symlink(e, "/dummy/etc")
                .symlink("/dummy/etc", "localetc")
                .file("/dummy/etc/unbroken", b"unbroken", 0o644)
                .build()
        },
        expect: Expect::Ok(unbroken),
    });
}

#[test]
fn symlink_multiple_relative() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o755)
                .dir("dummy", 0o755)
                .symlink(e, "/dummy/etc")
                .symlink("./dummy/etc", "localetc")
                .file("/dummy/etc/unbroken", b"unbroken", 0o644)
                .build()
        },
        expect: Expect::Ok(unbroken),
    });
}

#[test]
fn symlink_empty_file() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o755)
                .file("etc/emptied", b"notempty", 0o644)
                .symlink(e, "localetc")
                .file("/localetc/emptied", b"", 0o644)
                .build()
        },
        expect: Expect::Ok(|r| file_is(r, "/etc/emptied", b"")),
    });
}

#[test]
fn hardlink_relative() {
    run(Case {
        pre: none,
        layer: |_| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .dir("breakouts", 0o755)
                .symlink("../../etc", "breakouts/d1")
                .link("/breakouts/d1/passwd", "breakouts/mypasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/breakouts/mypasswd")),
    });
}

#[test]
fn hardlink_down_and_out() {
    run(Case {
        pre: none,
        layer: |_| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .dir("breakouts", 0o755)
                .dir("downandout", 0o755)
                .symlink("../downandout/../../etc", "breakouts/d1")
                .link("/breakouts/d1/passwd", "breakouts/mypasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/breakouts/mypasswd")),
    });
}

#[test]
fn hardlink_absolute() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink(e, "localetc")
                .link("/localetc/passwd", "localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "localpasswd")),
    });
}

#[test]
fn hardlink_relative_long() {
    run(Case {
        pre: none,
        layer: |_| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink("../../../../../../../etc", "localetc")
                .link("/localetc/passwd", "localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "localpasswd")),
    });
}

/// `upandout` does not exist, so the kernel cannot resolve `upandout/../../../etc`: the
/// hardlink's target is missing and the entry is rejected (containerd cleans the target
/// lexically and links `/etc/passwd`).
#[test]
fn hardlink_relative_up_and_out() {
    run(Case {
        pre: none,
        layer: |_| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink("upandout/../../../etc", "localetc")
                .link("/localetc/passwd", "localpasswd")
                .build()
        },
        expect: Expect::InvalidUnlikeContainerd,
    });
}

#[test]
fn hardlink_direct_relative() {
    run(Case {
        pre: none,
        layer: |_| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .link("../../../../../etc/passwd", "localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "localpasswd")),
    });
}

#[test]
fn hardlink_direct_absolute() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .link(&etc_passwd(e), "localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "localpasswd")),
    });
}

#[test]
fn symlink_parent_directory() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink(&format!("{e}/"), "..")
                .link(&etc_passwd(e), "localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/localpasswd")),
    });
}

#[test]
fn symlink_empty_filename() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink(&format!("{e}/"), "")
                .link(&etc_passwd(e), "localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/localpasswd")),
    });
}

#[test]
fn symlink_parent_relative() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink(&format!("{e}/"), "localetc/sub/..")
                .link(&etc_passwd(e), "/localetc/localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/localetc/localpasswd")),
    });
}

#[test]
fn symlink_slash_ended() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .dir("localetc/", 0o770)
                .link(&etc_passwd(e), "/localetc/localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/localetc/localpasswd")),
    });
}

fn pre_etc_and_localetc_dir(root: &Path, _: &str) {
    write(root, "/etc/passwd", b"inside");
    std::fs::create_dir(root.join("localetc")).unwrap();
}

#[test]
fn symlink_override_directory() {
    run(Case {
        pre: pre_etc_and_localetc_dir,
        layer: |e| {
            Layer::new()
                .symlink(e, "localetc")
                .link(&etc_passwd(e), "/localetc/localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/localetc/localpasswd")),
    });
}

#[test]
fn symlink_override_directory_relative() {
    run(Case {
        pre: pre_etc_and_localetc_dir,
        layer: |e| {
            Layer::new()
                .symlink("../../etc", "localetc")
                .link(&etc_passwd(e), "/localetc/localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "/localetc/localpasswd")),
    });
}

#[test]
fn directory_override_symlink() {
    run(Case {
        pre: |root, e| {
            write(root, "/etc/passwd", b"inside");
            symlink(e, root.join("localetc")).unwrap();
        },
        layer: |e| {
            Layer::new()
                .dir("/localetc/", 0o755)
                .link(&etc_passwd(e), "/localetc/localpasswd")
                .build()
        },
        expect: Expect::Ok(|r| {
            assert!(
                std::fs::symlink_metadata(r.join("localetc"))
                    .unwrap()
                    .is_dir()
            );
            passwd_linked(r, "/localetc/localpasswd");
        }),
    });
}

#[test]
fn directory_override_symlink_and_hardlink() {
    run(Case {
        pre: |root, _| {
            write(root, "/etc/passwd", b"inside");
            symlink("etc", root.join("localetc")).unwrap();
            std::fs::hard_link(root.join("etc/passwd"), root.join("etc/localpasswd")).unwrap();
        },
        layer: |_| {
            Layer::new()
                .dir("/localetc/", 0o755)
                .file("/localetc/localpasswd", b"different", 0o644)
                .build()
        },
        expect: Expect::Ok(|r| {
            assert!(!same_file(r, "/localetc/localpasswd", "/etc/passwd"));
            file_is(r, "/etc/passwd", b"inside");
        }),
    });
}

fn pre_etc_passwd(root: &Path, _: &str) {
    write(root, "/etc/passwd", b"inside");
}

#[test]
fn whiteout_root_parent() {
    run(Case {
        pre: pre_etc_passwd,
        layer: |_| Layer::new().whiteout(".wh...").build(),
        expect: Expect::Invalid,
    });
}

#[test]
fn whiteout_parent() {
    run(Case {
        pre: pre_etc_passwd,
        layer: |_| Layer::new().whiteout("etc/.wh...").build(),
        expect: Expect::Invalid,
    });
}

#[test]
fn whiteout_root() {
    run(Case {
        pre: pre_etc_passwd,
        layer: |_| Layer::new().whiteout(".wh..").build(),
        expect: Expect::Invalid,
    });
}

#[test]
fn whiteout_current_directory() {
    run(Case {
        pre: pre_etc_passwd,
        layer: |_| Layer::new().whiteout("etc/.wh..").build(),
        expect: Expect::Invalid,
    });
}

fn pre_all_users(root: &Path, e: &str) {
    write(root, "/etc/passwd", b"all users");
    write(root, "/etc/whitedout", b"ahhhh whiteout");
    symlink(e, root.join("localetc")).unwrap();
}

#[test]
fn whiteout_symlink() {
    run(Case {
        pre: pre_all_users,
        layer: |_| Layer::new().whiteout(".wh.localetc").build(),
        expect: Expect::Ok(|r| {
            file_is(r, "etc/passwd", b"all users");
            assert!(!lexists(r, "localetc"));
        }),
    });
}

#[test]
fn whiteout_symlink_path() {
    run(Case {
        pre: pre_all_users,
        layer: |_| Layer::new().whiteout("localetc/.wh.whitedout").build(),
        expect: Expect::Ok(|r| {
            file_is(r, "etc/passwd", b"all users");
            assert!(!lexists(r, "etc/whitedout"));
        }),
    });
}

#[test]
fn whiteout_directory_name() {
    run(Case {
        pre: pre_all_users,
        layer: |_| {
            Layer::new()
                .file(".wh.etc/somefile", b"non-empty", 0o644)
                .build()
        },
        expect: Expect::Ok(|r| {
            file_is(r, "etc/passwd", b"all users");
            file_is(r, ".wh.etc/somefile", b"non-empty");
        }),
    });
}

fn pre_dead_symlink(root: &Path, _: &str) {
    write(root, "/etc/passwd", b"all users");
    symlink("/dne", root.join("localetc")).unwrap();
}

#[test]
fn whiteout_dead_symlink_parent() {
    run(Case {
        pre: pre_dead_symlink,
        layer: |_| Layer::new().whiteout("localetc/.wh.etc").build(),
        expect: Expect::Ok(|r| file_is(r, "etc/passwd", b"all users")),
    });
}

#[test]
fn whiteout_relative_path() {
    run(Case {
        pre: pre_dead_symlink,
        layer: |_| Layer::new().whiteout("dne/../.wh.etc").build(),
        expect: Expect::Ok(|r| assert!(!lexists(r, "etc/passwd"))),
    });
}

#[test]
fn hardlink_symlink_before_create_target() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .symlink(&etc_passwd(e), "localpasswd")
                .link("localpasswd", "localpasswd-dup")
                .file("/etc/passwd", b"after", 0o644)
                .build()
        },
        expect: Expect::Ok(|r| passwd_linked(r, "localpasswd-dup")),
    });
}

fn symlink_hardlinked(r: &Path) {
    let a = std::fs::symlink_metadata(r.join("localpasswd")).unwrap();
    assert!(
        a.file_type().is_symlink(),
        "the hardlink is to the symlink itself"
    );
    assert_eq!(
        std::fs::read_link(r.join("localpasswd")).unwrap(),
        std::fs::read_link(r.join("passwdlink")).unwrap()
    );
    passwd_linked(r, "/localpasswd");
}

#[test]
fn hardlink_symlink_relative() {
    run(Case {
        pre: none,
        layer: |_| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink("../../../../../etc/passwd", "passwdlink")
                .link("/passwdlink", "localpasswd")
                .build()
        },
        expect: Expect::Ok(symlink_hardlinked),
    });
}

#[test]
fn hardlink_symlink_absolute() {
    run(Case {
        pre: none,
        layer: |e| {
            Layer::new()
                .dir("etc", 0o770)
                .file("/etc/passwd", b"inside", 0o644)
                .symlink(&etc_passwd(e), "passwdlink")
                .link("/passwdlink", "localpasswd")
                .build()
        },
        expect: Expect::Ok(symlink_hardlinked),
    });
}

#[test]
fn hardlink_symlink_chmod() {
    // containerd's case names real paths outside the root; ours are the sentinel's.
    let sb = Sandbox::new();
    let p = sb.outside.join("perm400");
    let ep = sb.outside.join("also-exists-outside-root");
    let layer = Layer::new()
        .symlink(p.to_str().unwrap(), ep.to_str().unwrap())
        .link(ep.to_str().unwrap(), "sketchylink")
        .build();
    common::apply(&layer, &sb.root).unwrap();
    // The names landed inside the root.
    assert!(
        stat_in_root(&sb.root, ep.to_str().unwrap()).is_err(),
        "symlink resolves inside root to nothing"
    );
    assert!(
        std::fs::symlink_metadata(sb.root.join("sketchylink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    sb.assert_sentinel_unchanged();
}
