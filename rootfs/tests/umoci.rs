//! Conformance with umoci: images built by `umoci repack` from real directories (files,
//! dirs, hardlinks, symlinks, setuid/setgid/sticky, owners, xattrs, and deletions that
//! become whiteouts) plus a hand-built layer with opaque whiteouts added with
//! `umoci raw add-layer`. Applying the layer blobs with our `apply` must give the same
//! tree as `umoci unpack`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Layer as TarLayer;
use oci_spec::image::{ImageIndex, ImageManifest};

fn umoci(args: &[&str], cwd: &Path) {
    let out = Command::new("umoci")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// (type, mode, uid, gid, size, sha256 of content, link target, user xattrs) per path.
type Entry = (
    &'static str,
    u32,
    u32,
    u32,
    usize,
    String,
    Option<PathBuf>,
    Vec<(String, Vec<u8>)>,
);

fn listing(root: &Path) -> BTreeMap<PathBuf, Entry> {
    common::snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.as_os_str().is_empty())
        .map(|(p, n)| {
            let user: Vec<_> = n
                .xattrs
                .into_iter()
                .filter(|(k, _)| k.starts_with("user."))
                .collect();
            let hash = dist_content::sha256_of(&n.data).digest().to_owned();
            (
                p,
                (
                    n.kind,
                    n.mode,
                    n.uid,
                    n.gid,
                    n.data.len(),
                    hash,
                    n.link,
                    user,
                ),
            )
        })
        .collect()
}

fn layers_of(layout: &Path, tag: &str) -> Vec<PathBuf> {
    let index: ImageIndex =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index
        .manifests()
        .iter()
        .find(|m| {
            m.annotations()
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .map(String::as_str)
                == Some(tag)
        })
        .unwrap();
    let blob = |d: &oci_spec::image::Digest| layout.join("blobs/sha256").join(d.digest());
    let manifest: ImageManifest =
        serde_json::from_slice(&std::fs::read(blob(desc.digest())).unwrap()).unwrap();
    manifest.layers().iter().map(|l| blob(l.digest())).collect()
}

fn populate_first(r: &Path) {
    std::fs::create_dir_all(r.join("etc/conf.d")).unwrap();
    std::fs::write(r.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    std::fs::write(r.join("etc/conf.d/a.conf"), b"a=1\n").unwrap();
    std::fs::write(r.join("etc/conf.d/b.conf"), b"b=2\n").unwrap();
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::fs::write(r.join("usr/bin/tool"), vec![0x7fu8; 70_000]).unwrap();
    chmod(&r.join("usr/bin/tool"), 0o755);
    std::fs::hard_link(r.join("usr/bin/tool"), r.join("usr/bin/tool-alias")).unwrap();
    std::fs::write(r.join("usr/bin/su"), b"#!/bin/false\n").unwrap();
    chmod(&r.join("usr/bin/su"), 0o4755);
    symlink("tool", r.join("usr/bin/rel-link")).unwrap();
    symlink("/etc/hosts", r.join("usr/bin/abs-link")).unwrap();
    symlink("/does/not/exist", r.join("dangling")).unwrap();
    std::fs::create_dir(r.join("tmp")).unwrap();
    chmod(&r.join("tmp"), 0o1777);
    std::fs::create_dir(r.join("shared")).unwrap();
    chmod(&r.join("shared"), 0o2775);
    std::fs::create_dir_all(r.join("home/user")).unwrap();
    std::fs::write(r.join("home/user/.profile"), b"export A=1\n").unwrap();
    std::os::unix::fs::chown(r.join("home/user"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::chown(r.join("home/user/.profile"), Some(1000), Some(100)).unwrap();
    xattr::set(r.join("etc/hosts"), "user.origin", b"umoci-test").unwrap();
    std::fs::write(r.join("empty"), b"").unwrap();
    let long = "l".repeat(180);
    std::fs::write(r.join(&long), b"long name").unwrap();
    std::fs::create_dir_all(r.join("var/lib/old")).unwrap();
    std::fs::write(r.join("var/lib/old/data"), b"old").unwrap();
    std::fs::create_dir_all(r.join("opt/app/lib")).unwrap();
    std::fs::write(r.join("opt/app/lib/x.so"), b"x").unwrap();
    std::fs::write(r.join("opt/app/README"), b"readme").unwrap();
    std::fs::write(r.join("becomes-dir"), b"file").unwrap();
    std::fs::create_dir(r.join("becomes-file")).unwrap();
    std::fs::write(r.join("becomes-file/inner"), b"inner").unwrap();
}

fn populate_second(r: &Path) {
    std::fs::remove_file(r.join("etc/conf.d/a.conf")).unwrap();
    std::fs::remove_dir_all(r.join("var/lib/old")).unwrap();
    std::fs::write(r.join("etc/hosts"), b"10.0.0.1 changed\n").unwrap();
    chmod(&r.join("usr/bin/su"), 0o2755);
    std::fs::remove_file(r.join("becomes-dir")).unwrap();
    std::fs::create_dir(r.join("becomes-dir")).unwrap();
    std::fs::write(r.join("becomes-dir/child"), b"child").unwrap();
    std::fs::remove_dir_all(r.join("becomes-file")).unwrap();
    std::fs::write(r.join("becomes-file"), b"now a file").unwrap();
    std::fs::hard_link(r.join("etc/conf.d/b.conf"), r.join("etc/b-link")).unwrap();
    std::fs::remove_file(r.join("dangling")).unwrap();
    symlink("usr/bin", r.join("dangling")).unwrap();
}

#[test]
fn applying_umoci_layers_matches_umoci_unpack() {
    if Command::new("umoci").arg("--version").output().is_err() {
        eprintln!("SKIPPED umoci conformance: umoci not installed");
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED umoci conformance: needs root for owners and setuid");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    umoci(&["init", "--layout", "img"], t);
    umoci(&["new", "--image", "img:v0"], t);
    umoci(&["unpack", "--image", "img:v0", "b1"], t);
    populate_first(&t.join("b1/rootfs"));
    umoci(&["repack", "--image", "img:v1", "b1"], t);
    umoci(&["unpack", "--image", "img:v1", "b2"], t);
    populate_second(&t.join("b2/rootfs"));
    umoci(&["repack", "--image", "img:v2", "b2"], t);

    // A hand-built layer: opaque directories (one refilled by the same layer), a
    // whiteout, and a file under a new directory with no directory entry.
    let hand = TarLayer::new()
        .dir("opt/app", 0o755)
        .whiteout("opt/app/.wh..wh..opq")
        .file("opt/app/NEW", b"new", 0o644)
        .dir("etc/conf.d", 0o750)
        .whiteout("etc/conf.d/.wh..wh..opq")
        .whiteout("usr/bin/.wh.tool-alias")
        .file("srv/www/index.html", b"<html>", 0o644)
        .build();
    std::fs::write(t.join("hand.tar"), &hand).unwrap();
    umoci(
        &[
            "raw",
            "add-layer",
            "--image",
            "img:v2",
            "--tag",
            "v3",
            "hand.tar",
        ],
        t,
    );
    umoci(&["unpack", "--image", "img:v3", "theirs"], t);

    let layers = layers_of(&t.join("img"), "v3");
    assert_eq!(layers.len(), 3);
    let ours = t.join("ours");
    std::fs::create_dir(&ours).unwrap();
    for l in &layers {
        dist_rootfs::apply(std::fs::File::open(l).unwrap(), &ours, &Default::default()).unwrap();
    }
    let (a, b) = (listing(&ours), listing(&t.join("theirs/rootfs")));
    for (p, e) in &b {
        assert_eq!(a.get(p), Some(e), "{} differs from umoci's", p.display());
    }
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    // The interesting bits really are there.
    assert!(
        b.contains_key(Path::new("opt/app/NEW")) && !b.contains_key(Path::new("opt/app/README"))
    );
    assert!(!b.contains_key(Path::new("var/lib/old")));
    assert_eq!(b[Path::new("usr/bin/su")].1, 0o2755);
    assert_eq!(b[Path::new("tmp")].1, 0o1777);
}
