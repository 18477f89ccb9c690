//! The applier keeps the directories along the last parent path open between entries.
//! Every entry must still land where resolving its path from the root, at that moment,
//! says: these layers change what a kept directory stands for (removed, replaced by a
//! symlink, whited out, reached through a symlink) and check nothing is written into a
//! stale one, and nothing outside the root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use common::{Layer, Sandbox};
use dist_rootfs::{ApplyOptions, apply};

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[test]
fn a_directory_replaced_by_a_symlink_to_outside_is_followed_inside_the_root() {
    for target in ["/etc", "../../etc", "../../../../.."] {
        let sb = Sandbox::new();
        let r = &sb.root;
        let layer = Layer::new()
            .dir("etc", 0o755)
            .dir("a", 0o755)
            .dir("a/b", 0o755)
            .file("a/b/one", b"1", 0o644)
            .file("a/f", b"f", 0o644)
            // Replaces the kept directory `a` (and `a/b` below it).
            .symlink(target, "a")
            .file("a/x", b"through the new symlink", 0o644)
            .build();
        apply(&layer[..], r, &opts()).unwrap();
        assert!(std::fs::symlink_metadata(r.join("a")).unwrap().is_symlink());
        let landed = if target == "../../../../.." {
            r.join("x")
        } else {
            r.join("etc/x")
        };
        assert_eq!(
            std::fs::read(&landed).unwrap(),
            b"through the new symlink",
            "{target}"
        );
        sb.assert_sentinel_unchanged();
    }
}

#[test]
fn a_directory_replaced_by_a_file_cannot_be_written_through() {
    let sb = Sandbox::new();
    let layer = Layer::new()
        .dir("a", 0o755)
        .file("a/f", b"f", 0o644)
        .file("a", b"now a file", 0o644)
        .file("a/x", b"x", 0o644)
        .build();
    assert!(apply(&layer[..], &sb.root, &opts()).is_err());
    assert_eq!(std::fs::read(sb.root.join("a")).unwrap(), b"now a file");
    sb.assert_sentinel_unchanged();
}

#[test]
fn a_whited_out_directory_is_created_again_by_later_entries() {
    let sb = Sandbox::new();
    let r = &sb.root;
    let layer = Layer::new()
        .dir("d", 0o755)
        .dir("d/e", 0o755)
        .file("d/e/old", b"old", 0o644)
        .whiteout(".wh.d")
        .file("d/e/new", b"new", 0o644)
        .file("d/new", b"new", 0o644)
        .build();
    apply(&layer[..], r, &opts()).unwrap();
    assert!(!exists(&r.join("d/e/old")));
    assert_eq!(std::fs::read(r.join("d/e/new")).unwrap(), b"new");
    assert_eq!(std::fs::read(r.join("d/new")).unwrap(), b"new");
    sb.assert_sentinel_unchanged();
}

#[test]
fn a_whiteout_inside_a_kept_directory_keeps_its_neighbours_reachable() {
    let sb = Sandbox::new();
    let r = &sb.root;
    let lower = Layer::new()
        .dir("d", 0o755)
        .dir("d/gone", 0o755)
        .file("d/gone/f", b"f", 0o644)
        .file("d/keep", b"k", 0o644)
        .build();
    apply(&lower[..], r, &opts()).unwrap();
    let upper = Layer::new()
        .file("d/a", b"a", 0o644)
        .whiteout("d/.wh.gone")
        .file("d/b", b"b", 0o644)
        .file("d/gone/again", b"again", 0o644)
        .build();
    apply(&upper[..], r, &opts()).unwrap();
    assert_eq!(std::fs::read(r.join("d/a")).unwrap(), b"a");
    assert_eq!(std::fs::read(r.join("d/b")).unwrap(), b"b");
    assert_eq!(std::fs::read(r.join("d/keep")).unwrap(), b"k");
    assert!(!exists(&r.join("d/gone/f")));
    assert_eq!(std::fs::read(r.join("d/gone/again")).unwrap(), b"again");
}

#[test]
fn an_opaque_directory_drops_kept_directories_below_it() {
    let sb = Sandbox::new();
    let r = &sb.root;
    let lower = Layer::new()
        .dir("o", 0o755)
        .dir("o/lower", 0o755)
        .file("o/lower/f", b"f", 0o644)
        .build();
    apply(&lower[..], r, &opts()).unwrap();
    let upper = Layer::new()
        .file("o/lower/g", b"g", 0o644)
        .whiteout("o/.wh..wh..opq")
        .file("o/lower/h", b"h", 0o644)
        .build();
    apply(&upper[..], r, &opts()).unwrap();
    assert!(!exists(&r.join("o/lower/f")));
    assert_eq!(std::fs::read(r.join("o/lower/g")).unwrap(), b"g");
    assert_eq!(std::fs::read(r.join("o/lower/h")).unwrap(), b"h");
}

#[test]
fn hardlinks_into_and_out_of_kept_directories() {
    let sb = Sandbox::new();
    let r = &sb.root;
    let layer = Layer::new()
        .dir("a", 0o755)
        .file("a/f", b"shared", 0o644)
        .dir("b", 0o755)
        .link("a/f", "b/h")
        .file("b/g", b"g", 0o644)
        .link("b/h", "a/h2")
        .file("a/after", b"after", 0o644)
        // Replaces a link in the kept directory: the other names keep the data.
        .file("a/h2", b"replaced", 0o644)
        .file("a/last", b"last", 0o644)
        .build();
    apply(&layer[..], r, &opts()).unwrap();
    let f = std::fs::symlink_metadata(r.join("a/f")).unwrap();
    let h = std::fs::symlink_metadata(r.join("b/h")).unwrap();
    assert_eq!(f.ino(), h.ino());
    assert_eq!(f.nlink(), 2);
    assert_eq!(std::fs::read(r.join("a/h2")).unwrap(), b"replaced");
    assert_eq!(std::fs::read(r.join("a/last")).unwrap(), b"last");
    assert_eq!(std::fs::read(r.join("b/g")).unwrap(), b"g");
    assert_eq!(std::fs::read(r.join("a/after")).unwrap(), b"after");
    sb.assert_sentinel_unchanged();
}

#[test]
fn a_parent_reached_through_a_symlink_is_resolved_again_after_a_removal() {
    // `a` leads to `b` through `b/c`: replacing `b/c` (seen as `a/c`) leaves `a`
    // dangling, so `a/g` has no parent any more and must not land in `b`.
    let sb = Sandbox::new();
    let r = &sb.root;
    let lower = Layer::new().dir("b", 0o755).dir("b/c", 0o755).build();
    apply(&lower[..], r, &opts()).unwrap();
    symlink("b/c/..", r.join("a")).unwrap();
    let upper = Layer::new()
        .file("a/f", b"f", 0o644)
        .file("a/c", b"replaces b/c", 0o644)
        .file("a/g", b"g", 0o644)
        .build();
    assert!(apply(&upper[..], r, &opts()).is_err());
    assert_eq!(std::fs::read(r.join("b/f")).unwrap(), b"f");
    assert_eq!(std::fs::read(r.join("b/c")).unwrap(), b"replaces b/c");
    assert!(!exists(&r.join("b/g")));
    sb.assert_sentinel_unchanged();
}

#[test]
fn a_symlinked_parent_replaced_by_a_directory_is_not_followed_any_more() {
    // Merged-/usr style: `lib` points at `usr/lib`; a later entry makes `lib` a directory.
    let sb = Sandbox::new();
    let r = &sb.root;
    let layer = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .symlink("usr/lib", "lib")
        .file("lib/one", b"1", 0o644)
        .dir("lib", 0o755)
        .file("lib/two", b"2", 0o644)
        .build();
    apply(&layer[..], r, &opts()).unwrap();
    assert_eq!(std::fs::read(r.join("usr/lib/one")).unwrap(), b"1");
    assert!(!exists(&r.join("usr/lib/two")));
    assert!(std::fs::symlink_metadata(r.join("lib")).unwrap().is_dir());
    assert_eq!(std::fs::read(r.join("lib/two")).unwrap(), b"2");
}

#[test]
fn deep_and_long_parents_work_as_before() {
    let sb = Sandbox::new();
    let r = &sb.root;
    // Deeper than the kept chain, then back to a shallow sibling and down again.
    let deep: Vec<String> = (0..100).map(|i| format!("d{i}")).collect();
    let deep = deep.join("/");
    let long = vec!["x".repeat(200); 15].join("/");
    let mut l = Layer::new();
    l.file(&format!("{deep}/f"), b"deep", 0o644)
        .file("d0/shallow", b"s", 0o644)
        .file(&format!("{deep}/g"), b"deep2", 0o644)
        .file(&format!("{long}/f"), b"long", 0o644);
    apply(&l.build()[..], r, &opts()).unwrap();
    assert_eq!(std::fs::read(r.join(&deep).join("f")).unwrap(), b"deep");
    assert_eq!(std::fs::read(r.join(&deep).join("g")).unwrap(), b"deep2");
    assert_eq!(std::fs::read(r.join("d0/shallow")).unwrap(), b"s");
    assert_eq!(std::fs::read(r.join(&long).join("f")).unwrap(), b"long");
}
