//! Behaviour of `apply` on well-formed and malformed layers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{Layer, Sandbox};
use dist_rootfs::{ApplyOptions, Compression, ErrorKind, IdMap, WhiteoutMode, apply};
use tar::EntryType;

fn md(root: &Path, p: &str) -> std::fs::Metadata {
    std::fs::symlink_metadata(root.join(p)).unwrap()
}

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

#[test]
fn entries_replace_what_is_at_their_path() {
    let sb = Sandbox::new();
    let r = &sb.root;
    let lower = Layer::new()
        .dir("was-dir", 0o755)
        .file("was-dir/child", b"x", 0o644)
        .file("was-file", b"f", 0o644)
        .dir("sym-over-dir", 0o755)
        .file("sym-over-dir/x", b"x", 0o644)
        .dir("keep", 0o755)
        .file("keep/lower", b"lower", 0o644)
        .build();
    apply(&lower[..], r, &opts()).unwrap();
    let upper = Layer::new()
        .file("was-dir", b"now a file", 0o600)
        .dir("was-file", 0o700)
        .symlink("/keep", "sym-over-dir")
        .dir("keep", 0o711)
        .file("keep/upper", b"upper", 0o644)
        .build();
    apply(&upper[..], r, &opts()).unwrap();
    assert_eq!(std::fs::read(r.join("was-dir")).unwrap(), b"now a file");
    assert!(md(r, "was-file").is_dir());
    assert_eq!(
        std::fs::read_link(r.join("sym-over-dir")).unwrap(),
        Path::new("/keep")
    );
    assert_eq!(
        std::fs::read(r.join("keep/lower")).unwrap(),
        b"lower",
        "dir over dir keeps contents"
    );
    assert_eq!(
        md(r, "keep").permissions().mode() & 0o7777,
        0o711,
        "dir entry updates metadata"
    );
    sb.assert_sentinel_unchanged();
}

fn opaque_case(marker_first: bool) {
    let sb = Sandbox::new();
    let r = &sb.root;
    let lower = Layer::new()
        .dir("d", 0o755)
        .file("d/old", b"old", 0o644)
        .dir("d/sub", 0o755)
        .file("d/sub/old", b"old", 0o644)
        .file("other", b"keep", 0o644)
        .build();
    apply(&lower[..], r, &opts()).unwrap();
    let mut l = Layer::new();
    l.dir("d", 0o755);
    if marker_first {
        l.whiteout("d/.wh..wh..opq");
    }
    l.dir("d/sub", 0o755)
        .file("d/sub/new", b"new", 0o644)
        .file("d/new", b"new", 0o644);
    if !marker_first {
        l.whiteout("d/.wh..wh..opq");
    }
    apply(&l.build()[..], r, &opts()).unwrap();
    let mut names: Vec<_> = walk(r);
    names.sort();
    assert_eq!(names, ["d", "d/new", "d/sub", "d/sub/new", "other"]);
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut work = vec![root.to_path_buf()];
    while let Some(d) = work.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_owned());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                work.push(p);
            }
        }
    }
    out
}

#[test]
fn opaque_hides_lower_contents_but_keeps_this_layers_marker_first() {
    opaque_case(true);
}

#[test]
fn opaque_hides_lower_contents_but_keeps_this_layers_marker_last() {
    opaque_case(false);
}

#[test]
fn whiteouts_remove_and_never_appear() {
    let sb = Sandbox::new();
    let r = &sb.root;
    apply(
        &Layer::new()
            .dir("a", 0o755)
            .file("a/f", b"x", 0o644)
            .dir("a/d", 0o755)
            .file("a/d/g", b"g", 0o644)
            .build()[..],
        r,
        &opts(),
    )
    .unwrap();
    apply(
        &Layer::new()
            .whiteout("a/.wh.f")
            .whiteout("a/.wh.d")
            .whiteout(".wh.missing")
            .build()[..],
        r,
        &opts(),
    )
    .unwrap();
    assert_eq!(walk(r), ["a"]);
}

#[test]
fn modes_owners_times_and_special_bits_are_exact() {
    let sb = Sandbox::new();
    let r = &sb.root;
    let mut l = Layer::new();
    l.uid = 1234;
    l.gid = 5678;
    l.mtime = 1_234_567_890;
    l.dir("bin", 0o755)
        .file("bin/su", b"#!", 0o4755)
        .file("bin/sg", b"#!", 0o2711)
        .dir("tmp", 0o1777)
        .dir("ro", 0o555)
        .file("ro/f", b"f", 0o444)
        .file("ro/world-writable", b"w", 0o666)
        .file("ro/none", b"n", 0o000);
    l.symlink("su", "bin/link");
    apply(&l.build()[..], r, &opts()).unwrap();
    for (p, mode) in [
        ("bin/su", 0o4755),
        ("bin/sg", 0o2711),
        ("tmp", 0o1777),
        ("ro", 0o555),
        ("ro/f", 0o444),
        ("ro/world-writable", 0o666),
        ("ro/none", 0o000),
    ] {
        let m = md(r, p);
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{p}");
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "{p}");
        assert_eq!(
            m.mtime(),
            1_234_567_890,
            "{p} (directory mtimes set after contents)"
        );
    }
    let m = md(r, "bin/link");
    assert_eq!((m.uid(), m.gid(), m.mtime()), (1234, 5678, 1_234_567_890));
}

#[test]
fn xattrs_including_capabilities_are_set_and_overlay_ones_ignored() {
    let sb = Sandbox::new();
    let r = &sb.root;
    // VFS_CAP_REVISION_2 with CAP_NET_RAW permitted and effective.
    let mut cap = vec![0x01, 0x00, 0x00, 0x02];
    cap.extend_from_slice(&[
        0x00, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let layer = Layer::new()
        .entry(
            "ping",
            EntryType::Regular,
            None,
            0o755,
            b"elf",
            &[
                ("user.note", b"hi"),
                ("security.capability", &cap),
                ("trusted.overlay.opaque", b"y"),
                ("user.overlay.redirect", b"/x"),
            ],
        )
        .entry(
            "d",
            EntryType::Directory,
            None,
            0o755,
            b"",
            &[("user.dir", b"1")],
        )
        .build();
    apply(&layer[..], r, &opts()).unwrap();
    assert_eq!(
        xattr::get(r.join("ping"), "user.note").unwrap().unwrap(),
        b"hi"
    );
    assert_eq!(
        xattr::get(r.join("ping"), "security.capability")
            .unwrap()
            .unwrap(),
        cap
    );
    assert_eq!(
        xattr::get(r.join("ping"), "trusted.overlay.opaque").unwrap(),
        None
    );
    assert_eq!(
        xattr::get(r.join("ping"), "user.overlay.redirect").unwrap(),
        None
    );
    assert_eq!(xattr::get(r.join("d"), "user.dir").unwrap().unwrap(), b"1");
}

#[test]
fn fifos_and_devices_are_created_when_privileged() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED fifos_and_devices_are_created_when_privileged: not root");
        return;
    }
    let sb = Sandbox::new();
    let r = &sb.root;
    let mut l = Layer::new();
    l.entry("fifo", EntryType::Fifo, None, 0o640, b"", &[]);
    l.device("null", EntryType::Char, 1, 3, 0o666);
    l.device("blk", EntryType::Block, 7, 0, 0o660);
    apply(&l.build()[..], r, &opts()).unwrap();
    assert!(md(r, "fifo").file_type().is_fifo());
    assert_eq!(md(r, "fifo").permissions().mode() & 0o7777, 0o640);
    assert!(md(r, "null").file_type().is_char_device());
    assert_eq!(md(r, "null").rdev(), rustix::fs::makedev(1, 3));
    assert!(md(r, "blk").file_type().is_block_device());
    assert_eq!(md(r, "blk").rdev(), rustix::fs::makedev(7, 0));
}

#[test]
fn long_names_and_link_names_survive() {
    let sb = Sandbox::new();
    let r = &sb.root;
    let long_dir = "d".repeat(120);
    let long = format!("{long_dir}/{}", "f".repeat(150));
    // tar::Builder writes GNU long-name records; ours write PAX ones.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_mtime(1);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, &long, &b"long"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_mtime(1);
    h.set_uid(0);
    h.set_gid(0);
    b.append_link(&mut h, "gnu-link", &long).unwrap();
    let mut layer = b.into_inner().unwrap();
    // A PAX-named hardlink appended after the end blocks would be ignored; build separately.
    let pax = Layer::new()
        .link(&long, "pax-hardlink")
        .symlink(&"t".repeat(300), "pax-symlink")
        .build();
    apply(&layer[..], r, &opts()).unwrap();
    apply(&pax[..], r, &opts()).unwrap();
    assert_eq!(std::fs::read(r.join(&long)).unwrap(), b"long");
    assert_eq!(
        std::fs::read_link(r.join("gnu-link")).unwrap(),
        Path::new(&long)
    );
    assert_eq!(md(r, "pax-hardlink").ino(), md(r, &long).ino());
    assert_eq!(
        std::fs::read_link(r.join("pax-symlink"))
            .unwrap()
            .as_os_str()
            .len(),
        300
    );
    layer.clear();
}

#[test]
fn diff_id_covers_the_whole_uncompressed_stream_in_every_compression() {
    let mut tar = Layer::new()
        .dir("a", 0o755)
        .file("a/b", b"content", 0o644)
        .build();
    // Extra zero blocks after the end-of-archive marker are part of the DiffID.
    tar.extend_from_slice(&[0u8; 4096]);
    let want = dist_content::sha256_of(&tar).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(&tar[..], 3).unwrap();
    for (blob, c) in [
        (&tar, Compression::None),
        (&gz, Compression::Gzip),
        (&zs, Compression::Zstd),
    ] {
        let sb = Sandbox::new();
        let a = apply(&blob[..], &sb.root, &opts()).unwrap();
        assert_eq!(a.diff_id.to_string(), want);
        assert_eq!(a.size, tar.len() as u64);
        assert_eq!(a.compression, c);
        assert_eq!(std::fs::read(sb.root.join("a/b")).unwrap(), b"content");
    }
}

#[test]
fn truncated_stream_names_the_entry() {
    let tar = Layer::new().file("big", &vec![7u8; 100_000], 0o644).build();
    let sb = Sandbox::new();
    let err = apply(&tar[..60_000], &sb.root, &opts()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("big"), "{err}");
}

#[test]
fn bad_checksum_and_garbage_are_errors() {
    let mut tar = Layer::new()
        .file("first", b"1", 0o644)
        .file("second", b"2", 0o644)
        .build();
    // Corrupt the second entry's ustar header name (after its PAX header).
    let pos = tar.windows(6).rposition(|w| w == b"second").unwrap();
    tar[pos] = b'X';
    let sb = Sandbox::new();
    let err = apply(&tar[..], &sb.root, &opts()).unwrap_err();
    assert!(err.to_string().contains("first"), "{err}");
    let err = apply(&[0x55u8; 2048][..], &sb.root, &opts()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let gz_truncated = [0x1f, 0x8b, 0x08, 0x00];
    assert!(apply(&gz_truncated[..], &sb.root, &opts()).is_err());
}

#[test]
fn hardlink_to_missing_or_directory_is_rejected() {
    let sb = Sandbox::new();
    let err = apply(
        &Layer::new().link("nowhere", "l").build()[..],
        &sb.root,
        &opts(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"l\""), "{err}");
    let err = apply(
        &Layer::new().dir("d", 0o755).link("d", "l").build()[..],
        &sb.root,
        &opts(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    sb.assert_sentinel_unchanged();
}

#[test]
fn replacing_a_hardlinked_file_leaves_the_other_link_alone() {
    let sb = Sandbox::new();
    let r = &sb.root;
    std::fs::write(r.join("a"), b"shared").unwrap();
    std::fs::hard_link(r.join("a"), r.join("b")).unwrap();
    apply(
        &Layer::new().file("a", b"new", 0o600).build()[..],
        r,
        &opts(),
    )
    .unwrap();
    assert_eq!(std::fs::read(r.join("b")).unwrap(), b"shared");
    assert_ne!(md(r, "a").ino(), md(r, "b").ino());
    assert_eq!(std::fs::read(r.join("a")).unwrap(), b"new");
}

#[test]
fn id_map_shifts_owners_and_rejects_unmapped() {
    let sb = Sandbox::new();
    let mut l = Layer::new();
    l.uid = 10;
    l.gid = 20;
    l.file("f", b"x", 0o644);
    let o = opts().id_map(IdMap::shift(100_000, 1000));
    apply(&l.build()[..], &sb.root, &o).unwrap();
    assert_eq!(
        (md(&sb.root, "f").uid(), md(&sb.root, "f").gid()),
        (100_010, 100_020)
    );
    l.uid = 5000;
    l.file("g", b"x", 0o644);
    let err = apply(&l.build()[..], &sb.root, &o).unwrap_err();
    assert!(err.to_string().contains("\"g\""), "{err}");
}

#[test]
fn overlay_mode_writes_char_device_whiteouts_and_opaque_xattr() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED overlay_mode_writes_char_device_whiteouts_and_opaque_xattr: not root");
        return;
    }
    let sb = Sandbox::new();
    let r = &sb.root;
    let l = Layer::new()
        .dir("d", 0o755)
        .whiteout("d/.wh..wh..opq")
        .file("d/new", b"n", 0o644)
        .whiteout(".wh.gone")
        .build();
    apply(&l[..], r, &opts().whiteouts(WhiteoutMode::Overlay)).unwrap();
    let m = md(r, "gone");
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert_eq!(
        xattr::get(r.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .unwrap(),
        b"y"
    );
    assert!(r.join("d/new").exists());
    assert!(!r.join(".wh.gone").exists() && !r.join("d/.wh..wh..opq").exists());
}

#[tokio::test]
async fn apply_async_streams_from_an_async_reader() {
    let sb = Sandbox::new();
    let tar = Layer::new().file("x", &vec![1u8; 1_000_000], 0o644).build();
    let a = dist_rootfs::apply_async(&tar[..], &sb.root, opts())
        .await
        .unwrap();
    assert_eq!(a.size, tar.len() as u64);
    assert_eq!(
        std::fs::metadata(sb.root.join("x")).unwrap().len(),
        1_000_000
    );
}

#[test]
fn entries_in_a_setgid_directory_keep_their_recorded_group() {
    let sb = Sandbox::new();
    let mut lower = Layer::new();
    lower.gid = 5678;
    lower.dir("sg", 0o2775);
    apply(&lower.build()[..], &sb.root, &opts()).unwrap();
    // Root-owned entries: the kernel would give them the directory's group.
    let upper = Layer::new()
        .file("sg/f", b"x", 0o644)
        .dir("sg/d", 0o755)
        .symlink("f", "sg/l")
        .build();
    apply(&upper[..], &sb.root, &opts()).unwrap();
    for p in ["sg/f", "sg/d", "sg/l"] {
        assert_eq!(md(&sb.root, p).gid(), 0, "{p}");
    }
    assert_eq!(md(&sb.root, "sg").gid(), 5678);
}

#[test]
fn without_same_owner_everything_belongs_to_the_caller() {
    let sb = Sandbox::new();
    let mut l = Layer::new();
    l.uid = 1234;
    l.gid = 5678;
    l.dir("d", 0o755)
        .file("d/f", b"x", 0o4755)
        .symlink("f", "d/l");
    apply(&l.build()[..], &sb.root, &opts().same_owner(false)).unwrap();
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    for p in ["d", "d/f", "d/l"] {
        let m = md(&sb.root, p);
        assert_eq!((m.uid(), m.gid()), me, "{p}");
    }
    assert_eq!(md(&sb.root, "d/f").permissions().mode() & 0o7777, 0o4755);
}

#[test]
fn apply_takes_readers_that_are_not_send() {
    let sb = Sandbox::new();
    let tar = Layer::new().file("f", b"x", 0o644).build();
    let reader: Box<dyn std::io::Read> = Box::new(std::io::Cursor::new(tar));
    let _not_send = std::rc::Rc::new(());
    apply(reader, &sb.root, &opts()).unwrap();
    assert_eq!(std::fs::read(sb.root.join("f")).unwrap(), b"x");
}
