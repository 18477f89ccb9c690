//! Applying without privileges, as rootless unpackers do: the test re-runs itself as
//! `nobody` (through `setpriv`) when started as root. Device nodes are skipped, fifos and
//! files are still created, and everything is owned by the caller.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::Layer;
use tar::EntryType;

const CHILD_ENV: &str = "DIST_ROOTFS_UNPRIVILEGED_ROOT";

fn layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.uid = 1234;
    l.gid = 1234;
    l.dir("dev", 0o755);
    l.device("dev/null", EntryType::Char, 1, 3, 0o666);
    l.device("dev/sda", EntryType::Block, 8, 0, 0o660);
    l.entry("fifo", EntryType::Fifo, None, 0o600, b"", &[]);
    l.file("file", b"data", 0o4755);
    l.build()
}

/// The body, run as an unprivileged user.
fn check(root: &Path) {
    dist_rootfs::apply(&layer()[..], root, &dist_rootfs::ApplyOptions::default()).unwrap();
    assert!(
        std::fs::symlink_metadata(root.join("dev/null")).is_err(),
        "device skipped"
    );
    assert!(
        std::fs::symlink_metadata(root.join("dev/sda")).is_err(),
        "device skipped"
    );
    assert!(
        std::fs::symlink_metadata(root.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let f = std::fs::metadata(root.join("file")).unwrap();
    assert_eq!(
        f.uid(),
        rustix::process::geteuid().as_raw(),
        "owned by the caller"
    );
    assert_eq!(f.permissions().mode() & 0o7777, 0o4755);
}

#[test]
fn unprivileged_apply_skips_devices_and_keeps_caller_ownership() {
    if let Some(root) = std::env::var_os(CHILD_ENV) {
        check(Path::new(&root));
        return;
    }
    if !rustix::process::geteuid().is_root() {
        let tmp = tempfile::tempdir().unwrap();
        check(tmp.path());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unprivileged_apply_skips_devices_and_keeps_caller_ownership",
            "--nocapture",
        ])
        .env(CHILD_ENV, &root)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "unprivileged child failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("SKIPPED unprivileged apply: setpriv unavailable: {e}"),
    }
}
