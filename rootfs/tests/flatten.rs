//! `apply_flattened` gives the tree a one-by-one apply gives, for random stacks of layers
//! and for the cases that make skipping files hard; and it skips what it should.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Layer as TarLayer, Node, Sandbox};
use dist_content::LocalStore;
use dist_rootfs::{
    ApplyOptions, ErrorKind, Flattened, Layer, ScanAhead, Snapshotter, apply_flattened_with,
};
use oci_spec::image::{DescriptorBuilder, MediaType};
use proptest::prelude::*;
use tar::EntryType;

/// A tree: every node, and which paths share an inode (hardlinks).
#[derive(Debug, PartialEq, Eq)]
struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
    links: BTreeSet<BTreeSet<PathBuf>>,
}

fn tree(dir: &Path) -> Tree {
    let nodes = common::snapshot(dir);
    let mut by_inode: BTreeMap<(u64, u64), BTreeSet<PathBuf>> = BTreeMap::new();
    for (p, n) in &nodes {
        if n.kind == "file" || n.kind == "symlink" || n.kind == "fifo" {
            let md = std::fs::symlink_metadata(dir.join(p)).unwrap();
            by_inode
                .entry((md.dev(), md.ino()))
                .or_default()
                .insert(p.clone());
        }
    }
    let links = by_inode.into_values().filter(|s| s.len() > 1).collect();
    Tree { nodes, links }
}

async fn store_layer(store: &LocalStore, tar: &[u8]) -> Layer {
    let digest = dist_content::sha256_of(tar);
    let blob = DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(digest.clone())
        .size(tar.len() as u64)
        .build()
        .unwrap();
    dist_content::write_blob(store, "layer", &blob, tar)
        .await
        .unwrap();
    Layer {
        diff_id: digest,
        blob,
    }
}

/// What the one-by-one apply and the flattened apply made of the same layers.
struct Outcome {
    sequential: Result<Tree, String>,
    flattened: Result<(Tree, Flattened), String>,
}

impl Outcome {
    /// Both succeeded with the same tree, or both failed; returns the flattened report.
    fn assert_same(&self) -> Option<&Flattened> {
        match (&self.sequential, &self.flattened) {
            (Ok(a), Ok((b, f))) => {
                assert_eq!(a, b, "flattened tree differs ({f:?})");
                Some(f)
            }
            (Err(_), Err(_)) => None,
            (a, b) => panic!("one-by-one: {a:?}\nflattened: {b:?}"),
        }
    }
}

/// Applies `tars` one by one into one sandbox and flattened (scanning every layer) into
/// another; neither may change anything outside its root.
fn both(tars: &[Vec<u8>]) -> Outcome {
    both_with(tars, ScanAhead::All)
}

fn both_with(tars: &[Vec<u8>], scan: ScanAhead) -> Outcome {
    let seq = Sandbox::new();
    let mut sequential = Ok(());
    for t in tars {
        if let Err(e) = common::apply(t, &seq.root) {
            sequential = Err(e.to_string());
            break;
        }
    }
    seq.assert_sentinel_unchanged();
    let flat = Sandbox::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let content = tempfile::tempdir().unwrap();
    let flattened = rt.block_on(async {
        let store = LocalStore::open(content.path()).unwrap();
        let mut layers = Vec::new();
        for t in tars {
            layers.push(store_layer(&store, t).await);
        }
        apply_flattened_with(&layers, &store, &flat.root, ApplyOptions::default(), scan).await
    });
    flat.assert_sentinel_unchanged();
    Outcome {
        sequential: sequential.map(|()| tree(&seq.root)),
        flattened: flattened
            .map(|f| (tree(&flat.root), f))
            .map_err(|e| e.to_string()),
    }
}

fn layer(f: impl FnOnce(&mut TarLayer)) -> Vec<u8> {
    let mut l = TarLayer::new();
    f(&mut l);
    l.build()
}

fn opaque(l: &mut TarLayer, dir: &str) {
    l.file(&format!("{dir}/.wh..wh..opq"), b"", 0o644);
}

#[test]
fn a_file_a_later_layer_deletes_is_never_written() {
    let o = both(&[
        layer(|l| {
            l.dir("etc", 0o755)
                .file("etc/big", &[1; 5000], 0o644)
                .file("etc/kept", b"k", 0o600);
        }),
        layer(|l| {
            l.whiteout("etc/.wh.big");
        }),
    ]);
    let f = o.assert_same().unwrap();
    assert_eq!(
        (f.skipped_files, f.skipped_bytes, f.fell_back),
        (1, 5000, false)
    );
}

#[test]
fn the_files_of_a_deleted_directory_are_skipped_and_its_parents_kept() {
    // No header for usr or usr/share: writing a file creates them, and they outlive the
    // deleted directory.
    let o = both(&[
        layer(|l| {
            l.file("usr/share/doc/a", b"a", 0o644)
                .file("usr/share/doc/sub/b", b"b", 0o644)
                .file("usr/share/man/m", b"m", 0o644);
        }),
        layer(|l| {
            l.whiteout("usr/share/.wh.doc");
        }),
    ]);
    let f = o.assert_same().unwrap();
    assert_eq!((f.skipped_files, f.fell_back), (2, false));
}

#[test]
fn a_file_deleted_by_removing_its_parent_directory_keeps_the_parent_chain() {
    let o = both(&[
        layer(|l| {
            l.file("a/b/f", b"f", 0o644);
        }),
        layer(|l| {
            l.whiteout("a/b/.wh.f");
        }),
    ]);
    assert_eq!(o.assert_same().unwrap().skipped_files, 1);
}

#[test]
fn an_opaque_directory_hides_lower_files_but_not_its_own() {
    let o = both(&[
        layer(|l| {
            l.dir("d", 0o755)
                .file("d/x", b"x", 0o644)
                .file("d/k/y", b"y", 0o644)
                .file("d/k/z", b"z", 0o644);
        }),
        layer(|l| {
            l.dir("d", 0o750).file("d/k/new", b"n", 0o644);
            opaque(l, "d");
            l.file("d/after", b"a", 0o644);
        }),
    ]);
    let f = o.assert_same().unwrap();
    // d/x goes; d/k is named by the opaque layer, so its lower files are written (and
    // removed by the marker) rather than proven dead.
    assert_eq!((f.skipped_files, f.fell_back), (1, false));
}

#[test]
fn an_opaque_root_hides_everything_below() {
    let o = both(&[
        layer(|l| {
            l.file("a", b"a", 0o644).file("b/c", b"c", 0o644);
        }),
        layer(|l| {
            l.file(".wh..wh..opq", b"", 0o644).file("n", b"n", 0o644);
        }),
    ]);
    assert_eq!(o.assert_same().unwrap().skipped_files, 2);
}

#[test]
fn a_directory_replaced_by_a_symlink_or_a_file_and_back() {
    let o = both(&[
        layer(|l| {
            l.dir("d", 0o755)
                .file("d/f", b"f", 0o644)
                .file("e", b"e", 0o644)
                .symlink("target", "s");
        }),
        layer(|l| {
            l.symlink("elsewhere", "d")
                .dir("e", 0o700)
                .file("e/g", b"g", 0o644);
            l.dir("s", 0o755).file("s/h", b"h", 0o644);
        }),
        layer(|l| {
            l.file("d", b"file now", 0o644);
        }),
    ]);
    let f = o.assert_same().unwrap();
    // d/f (under what becomes a symlink) and e (a file replaced by a directory).
    assert_eq!((f.skipped_files, f.fell_back), (2, false));
}

#[test]
fn usrmerge_symlinks_route_upper_writes_and_are_never_skipped_through() {
    for (link, real) in [("bin", "usr/bin"), ("usr/bin", "bin")] {
        let rel = if link == "bin" { "usr/bin" } else { "../bin" };
        let o = both(&[
            layer(|l| {
                l.dir("usr", 0o755)
                    .dir(real, 0o755)
                    .symlink(rel, link)
                    .file(&format!("{real}/sh"), b"sh", 0o755)
                    .file(&format!("{real}/ls"), b"ls v1", 0o755);
            }),
            layer(|l| {
                // Written through the link: lands in the real directory.
                l.file(&format!("{link}/ls"), b"ls v2", 0o755).file(
                    &format!("{link}/cat"),
                    b"cat",
                    0o755,
                );
            }),
            layer(|l| {
                l.whiteout(&format!("{link}/.wh.cat"))
                    .whiteout(&format!("{real}/.wh.sh"));
            }),
        ]);
        let f = o.assert_same().unwrap();
        // Only the real path's sh is provably dead; cat was written through the link.
        assert_eq!((f.skipped_files, f.fell_back), (1, false), "{link}");
    }
}

#[test]
fn a_hardlink_to_a_file_a_later_layer_deletes_keeps_the_content() {
    // In the same layer, from a middle layer, and with the target replaced instead.
    let cases = [
        vec![
            layer(|l| {
                l.file("f", b"content", 0o644).link("f", "h");
            }),
            layer(|l| {
                l.whiteout(".wh.f");
            }),
        ],
        vec![
            layer(|l| {
                l.file("f", b"content", 0o644);
            }),
            layer(|l| {
                l.link("f", "h");
            }),
            layer(|l| {
                l.whiteout(".wh.f");
            }),
        ],
        vec![
            layer(|l| {
                l.file("f", b"old", 0o644);
            }),
            layer(|l| {
                l.link("f", "h");
            }),
            layer(|l| {
                l.file("f", b"new", 0o644);
            }),
        ],
    ];
    for tars in cases {
        let o = both(&tars);
        let f = o.assert_same().unwrap();
        assert!(f.fell_back, "{f:?}");
        let (t, _) = o.flattened.as_ref().unwrap();
        assert_eq!(t.nodes[Path::new("h")].kind, "file");
    }
}

#[test]
fn an_entry_re_created_after_its_deletion_is_written() {
    let o = both(&[
        layer(|l| {
            l.file("f", b"v1", 0o644)
                .dir("d", 0o755)
                .file("d/x", b"x1", 0o644);
        }),
        layer(|l| {
            l.whiteout(".wh.f").whiteout(".wh.d");
        }),
        layer(|l| {
            l.file("f", b"v2", 0o600).file("d/x", b"x2", 0o644);
        }),
    ]);
    let f = o.assert_same().unwrap();
    assert_eq!((f.skipped_files, f.fell_back), (2, false));
}

#[test]
fn directory_metadata_set_by_several_layers_ends_as_the_top_one_says() {
    let o = both(&[
        layer(|l| {
            l.entry(
                "d",
                EntryType::Directory,
                None,
                0o700,
                b"",
                &[("user.a", b"1")],
            )
            .file("d/f", b"f", 0o644);
        }),
        layer(|l| {
            l.uid = 12;
            l.entry(
                "d",
                EntryType::Directory,
                None,
                0o751,
                b"",
                &[("user.b", b"2")],
            )
            .whiteout("d/.wh.f");
        }),
    ]);
    assert_eq!(o.assert_same().unwrap().skipped_files, 1);
}

#[test]
fn an_entry_below_a_skipped_file_falls_back_to_the_one_by_one_error() {
    let o = both(&[
        layer(|l| {
            l.file("f", b"f", 0o644);
        }),
        layer(|l| {
            l.file("f/x", b"x", 0o644);
        }),
        layer(|l| {
            l.whiteout(".wh.f");
        }),
    ]);
    assert!(o.sequential.is_err());
    assert!(o.flattened.is_err());
}

#[test]
fn upper_writes_through_a_lower_symlink_pointing_outside_stay_inside() {
    let sb = Sandbox::new();
    let out = sb.outside.to_str().unwrap().to_owned();
    let o = both(&[
        layer(|l| {
            l.symlink(&out, "escape")
                .symlink("../../..", "up")
                .file("escape/passwd", b"x", 0o644);
        }),
        layer(|l| {
            l.file("escape/passwd", b"y", 0o644)
                .file("up/etc/passwd", b"z", 0o644)
                .link("escape/passwd", "h");
        }),
        layer(|l| {
            l.whiteout("escape/.wh.passwd")
                .whiteout("up/etc/.wh.passwd");
        }),
    ]);
    o.assert_same();
    sb.assert_sentinel_unchanged();
}

#[test]
fn small_top_layers_are_scanned_by_default() {
    let big = vec![7u8; 200_000];
    let o = both_with(
        &[
            layer(|l| {
                l.file("a", &big, 0o644).file("b", &big, 0o644);
            }),
            layer(|l| {
                l.whiteout(".wh.a");
            }),
        ],
        ScanAhead::Small,
    );
    let f = o.assert_same().unwrap();
    assert_eq!((f.scanned.as_slice(), f.skipped_files), (&[1][..], 1));
    let o = both_with(
        &[
            layer(|l| {
                l.file("a", &big, 0o644);
            }),
            layer(|l| {
                l.whiteout(".wh.a");
            }),
        ],
        ScanAhead::None,
    );
    assert_eq!(o.assert_same().unwrap().skipped_files, 0);
}

#[tokio::test]
async fn a_diff_id_mismatch_is_an_error_and_the_target_must_be_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path().join("content")).unwrap();
    let mut l = store_layer(
        &store,
        &layer(|l| {
            l.file("f", b"f", 0o644);
        }),
    )
    .await;
    let target = tmp.path().join("t");
    std::fs::create_dir(&target).unwrap();
    let good = vec![l.clone()];
    l.diff_id = dist_content::sha256_of(b"something else");
    let err = apply_flattened_with(
        &[l],
        &store,
        &target,
        ApplyOptions::default(),
        ScanAhead::All,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, dist_rootfs::Error::DiffIdMismatch { .. }),
        "{err}"
    );
    let err = apply_flattened_with(
        &good,
        &store,
        &target,
        ApplyOptions::default(),
        ScanAhead::All,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

#[tokio::test]
async fn unpack_copies_a_committed_snapshot_and_applies_flattened_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path().join("content")).unwrap();
    let tars = [
        layer(|l| {
            l.dir("etc", 0o755)
                .file("etc/a", b"a", 0o644)
                .file("etc/gone", b"g", 0o644)
                .link("etc/a", "etc/a2");
        }),
        layer(|l| {
            l.whiteout("etc/.wh.gone");
        }),
    ];
    let mut layers = Vec::new();
    for t in &tars {
        layers.push(store_layer(&store, t).await);
    }
    let sn = dist_rootfs::NativeSnapshotter::new(tmp.path().join("snapshots")).unwrap();
    // Before a pull: nothing committed, the layers are applied flattened.
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    let how = dist_rootfs::unpack(&layers, &[&sn], &store, &flat, ApplyOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(&how, dist_rootfs::Unpacked::Flattened(f) if f.skipped_files == 1),
        "{how:?}"
    );
    // After: the committed snapshot is copied (reflinked where the filesystem can).
    dist_rootfs::apply_layers(&layers, &sn, &store)
        .await
        .unwrap();
    let copy = tmp.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let how = dist_rootfs::unpack(&layers, &[&sn], &store, &copy, ApplyOptions::default())
        .await
        .unwrap();
    let reflinks = dist_rootfs::reflink_supported(tmp.path(), &copy);
    let expected = if reflinks {
        dist_rootfs::Unpacked::Reflink
    } else {
        dist_rootfs::Unpacked::Copy
    };
    assert_eq!(how, expected);
    assert_eq!(tree(&flat), tree(&copy));
    assert_eq!(tree(&copy).links.len(), 1, "the hardlink is kept");
    // The view it copied through is gone again.
    let mut keys = Vec::new();
    sn.walk(&mut |i| {
        keys.push(i.name);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
}

#[test]
fn no_reflinks_across_filesystems() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(!dist_rootfs::reflink_supported(
        Path::new("/proc"),
        tmp.path()
    ));
}

// --- random stacks -------------------------------------------------------------------

const OUT: &str = "@OUT";

/// Directories named a or b, leaves also f or g: names collide often enough to replace
/// each other, rarely enough that most stacks apply without error.
fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b"]), 0..3),
        prop::sample::select(vec!["a", "b", "f", "g"]),
    )
        .prop_map(|(mut c, leaf)| {
            c.push(leaf);
            c.join("/")
        })
}

#[derive(Debug, Clone)]
enum Op {
    Dir(String, u32),
    File(String, u8, u32),
    Symlink(String, String),
    Hardlink(String, String),
    Whiteout(String),
    Opaque(String),
    Fifo(String),
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop::sample::select(vec![0o755u32, 0o644, 0o700]);
    let target = prop_oneof![
        path(),
        path().prop_map(|p| format!("/{p}")),
        path().prop_map(|p| format!("../{p}")),
        Just(OUT.to_owned()),
    ];
    prop_oneof![
        2 => (path(), mode.clone()).prop_map(|(p, m)| Op::Dir(p, m)),
        5 => (path(), any::<u8>(), mode).prop_map(|(p, d, m)| Op::File(p, d, m)),
        1 => (target, path()).prop_map(|(t, p)| Op::Symlink(t, p)),
        1 => (path(), path()).prop_map(|(t, p)| Op::Hardlink(t, p)),
        3 => path().prop_map(Op::Whiteout),
        1 => path().prop_map(Op::Opaque),
        1 => path().prop_map(Op::Fifo),
    ]
}

fn with_last(p: &str, f: impl FnOnce(&str) -> String) -> String {
    match p.rsplit_once('/') {
        Some((dir, last)) => format!("{dir}/{}", f(last)),
        None => f(p),
    }
}

fn build(ops: &[Op], out: &str) -> Vec<u8> {
    let mut l = TarLayer::new();
    for o in ops {
        match o {
            Op::Dir(p, m) => l.dir(p, *m),
            Op::File(p, d, m) => l.file(p, &vec![*d; usize::from(*d % 8)], *m),
            Op::Symlink(t, p) => l.symlink(&t.replace(OUT, out), p),
            Op::Hardlink(t, p) => l.link(t, p),
            Op::Whiteout(p) => l.whiteout(&with_last(p, |n| format!(".wh.{n}"))),
            Op::Opaque(p) => l.file(&format!("{p}/.wh..wh..opq"), b"", 0o644),
            Op::Fifo(p) => l.entry(p, EntryType::Fifo, None, 0o644, b"", &[]),
        };
    }
    l.build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn flattened_equals_one_by_one(
        layers in prop::collection::vec(prop::collection::vec(op(), 0..8), 2..5),
    ) {
        // The sandbox path differs per run: build with a fixed outside path each apply
        // shares (the sentinel check runs on each sandbox's own).
        let out = "/nonexistent-dist-flatten-outside";
        let tars: Vec<Vec<u8>> = layers.iter().map(|ops| build(ops, out)).collect();
        both(&tars).assert_same();
    }
}
