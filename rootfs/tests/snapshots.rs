//! Snapshotters (native and overlay) and `apply_layers` on them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::Layer as TarLayer;
use dist_rootfs::{
    ErrorKind, Layer, Mount, NativeSnapshotter, OverlaySnapshotter, Share, SnapshotKind,
    Snapshotter, apply_layers, chain_ids,
};
use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};

/// An in-memory content store that counts reads.
#[derive(Default)]
struct MemProvider {
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    reads: AtomicUsize,
}

struct MemReader(Vec<u8>);

#[async_trait]
impl dist_content::ReaderAt for MemReader {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    async fn read_at(&self, buf: &mut [u8], offset: u64) -> dist_content::Result<usize> {
        let start = (offset as usize).min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }
}

#[async_trait]
impl dist_content::Provider for MemProvider {
    async fn reader_at(
        &self,
        desc: &Descriptor,
    ) -> dist_content::Result<Box<dyn dist_content::ReaderAt>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let b = self
            .blobs
            .lock()
            .unwrap()
            .get(desc.digest().as_ref())
            .cloned();
        b.map(|b| Box::new(MemReader(b)) as Box<dyn dist_content::ReaderAt>)
            .ok_or_else(|| dist_content::Error::NotFound(desc.digest().to_string()))
    }
}

fn digest(b: &[u8]) -> Digest {
    dist_content::sha256_of(b)
}

impl MemProvider {
    /// Stores `tar` gzipped and returns the layer (DiffID of the tar, descriptor of the blob).
    fn add(&self, tar: &[u8]) -> Layer {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        let blob = gz.finish().unwrap();
        let desc = DescriptorBuilder::default()
            .media_type(MediaType::ImageLayerGzip)
            .digest(digest(&blob))
            .size(blob.len() as u64)
            .build()
            .unwrap();
        self.blobs
            .lock()
            .unwrap()
            .insert(desc.digest().to_string(), blob);
        Layer {
            diff_id: digest(tar),
            blob: desc,
        }
    }
}

fn layers(p: &MemProvider) -> Vec<Layer> {
    vec![
        p.add(
            &TarLayer::new()
                .dir("etc", 0o755)
                .file("etc/a", b"a", 0o644)
                .file("etc/b", b"b", 0o644)
                .dir("opt", 0o755)
                .file("opt/x", b"x", 0o644)
                .build(),
        ),
        p.add(
            &TarLayer::new()
                .dir("etc", 0o755)
                .whiteout("etc/.wh.a")
                .file("etc/c", b"c", 0o600)
                .dir("opt", 0o755)
                .whiteout("opt/.wh..wh..opq")
                .file("opt/y", b"y", 0o644)
                .build(),
        ),
        p.add(
            &TarLayer::new()
                .file("etc/b", b"b2", 0o644)
                .symlink("b", "etc/link")
                .build(),
        ),
    ]
}

/// (path, type, mode, content) of every node, for comparing trees.
fn listing(root: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    common::snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.as_os_str().is_empty())
        .map(|(p, n)| {
            let data = if n.kind == "symlink" {
                n.link.unwrap().into_os_string().into_encoded_bytes()
            } else {
                n.data
            };
            (p.display().to_string(), n.kind.to_string(), n.mode, data)
        })
        .collect()
}

fn expected_flat() -> Vec<(String, String, u32, Vec<u8>)> {
    let e = |p: &str, k: &str, m: u32, d: &[u8]| (p.to_string(), k.to_string(), m, d.to_vec());
    vec![
        e("etc", "dir", 0o755, b""),
        e("etc/b", "file", 0o644, b"b2"),
        e("etc/c", "file", 0o600, b"c"),
        e("etc/link", "symlink", 0o777, b"b"),
        e("opt", "dir", 0o755, b""),
        e("opt/y", "file", 0o644, b"y"),
    ]
}

fn bind_source(m: &[Mount]) -> PathBuf {
    assert_eq!(m[0].kind, "bind");
    m[0].source.clone()
}

#[tokio::test]
async fn apply_layers_on_native_builds_the_flattened_tree_and_skips_committed_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    let p = MemProvider::default();
    let ls = layers(&p);
    let top = apply_layers(&ls, &sn, &p).await.unwrap();
    let chain = chain_ids(&ls.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
    assert_eq!(&top, chain.last().unwrap());
    for c in &chain {
        assert_eq!(
            sn.stat(c.as_ref()).await.unwrap().kind,
            SnapshotKind::Committed
        );
    }
    assert_eq!(
        sn.stat(chain[2].as_ref()).await.unwrap().parent.as_deref(),
        Some(chain[1].as_ref())
    );
    let view = sn.view("look", Some(top.as_ref())).await.unwrap();
    assert_eq!(listing(&bind_source(&view)), expected_flat());
    assert_eq!(p.reads.load(Ordering::SeqCst), 3);

    // Everything committed: nothing is read again.
    apply_layers(&ls, &sn, &p).await.unwrap();
    assert_eq!(p.reads.load(Ordering::SeqCst), 3);
    // Only the top missing: only it is applied.
    sn.remove("look").await.unwrap();
    sn.remove(top.as_ref()).await.unwrap();
    apply_layers(&ls, &sn, &p).await.unwrap();
    assert_eq!(p.reads.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn diff_id_mismatch_removes_the_snapshot_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    let p = MemProvider::default();
    let mut ls = layers(&p);
    ls[1].diff_id = digest(b"something else");
    let err = apply_layers(&ls, &sn, &p).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    let mut all = Vec::new();
    sn.walk(&mut |i| {
        all.push((i.name, i.kind));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        all,
        vec![(ls[0].diff_id.to_string(), SnapshotKind::Committed)],
        "only the good bottom layer remains"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("snapshots"))
            .unwrap()
            .count(),
        1,
        "bad snapshot's data is gone"
    );
}

async fn child_does_not_change_parent(share: Share) {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path())
        .unwrap()
        .with_share(share);
    let m = sn.prepare("base-active", None).await.unwrap();
    let base = bind_source(&m);
    std::fs::write(base.join("f"), b"parent").unwrap();
    std::fs::create_dir(base.join("d")).unwrap();
    std::fs::write(base.join("d/g"), b"parent").unwrap();
    std::fs::hard_link(base.join("f"), base.join("f-link")).unwrap();
    sn.commit("base", "base-active").await.unwrap();
    // An extraction key: the one `Share::HardlinkExtract` links instead of copying.
    let key = format!("{}child", dist_rootfs::EXTRACT_KEY_PREFIX);
    let m = sn.prepare(&key, Some("base")).await.unwrap();
    let child = bind_source(&m);
    assert_eq!(listing(&child), listing(&base));
    let md = |p: PathBuf| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    assert_eq!(
        md(child.join("f")),
        md(child.join("f-link")),
        "hardlinks inside a snapshot survive the copy"
    );
    let layer = TarLayer::new()
        .file("f", b"child", 0o600)
        .file("d/g", b"child", 0o600)
        .whiteout(".wh.f-link")
        .build();
    dist_rootfs::apply(&layer[..], &child, &Default::default()).unwrap();
    assert_eq!(std::fs::read(base.join("f")).unwrap(), b"parent");
    assert_eq!(std::fs::read(base.join("d/g")).unwrap(), b"parent");
    assert!(base.join("f-link").exists());
}

#[tokio::test]
async fn native_child_changes_never_reach_the_parent_with_reflink_or_copy() {
    child_does_not_change_parent(Share::ReflinkOrCopy).await;
}

#[tokio::test]
async fn native_child_changes_never_reach_the_parent_with_hardlink_sharing() {
    child_does_not_change_parent(Share::Hardlink).await;
}

#[tokio::test]
async fn snapshot_lifecycle_errors_have_the_right_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    assert_eq!(
        sn.stat("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    sn.prepare("a", None).await.unwrap();
    assert_eq!(
        sn.prepare("a", None).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        sn.prepare("b", Some("a")).await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition,
        "parent must be committed"
    );
    sn.commit("A", "a").await.unwrap();
    assert_eq!(sn.stat("a").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        sn.commit("B", "A").await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    sn.prepare("b", Some("A")).await.unwrap();
    assert_eq!(
        sn.remove("A").await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition,
        "A has a child"
    );
    let m = sn.mounts("b").await.unwrap();
    assert!(m[0].options.contains(&"rw".to_string()));
    assert!(sn.usage("A").await.unwrap().inodes == 0);
    sn.remove("b").await.unwrap();
    sn.remove("A").await.unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path().join("snapshots"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn crash_leftovers_never_look_committed_and_are_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    // A crash mid-prepare: data directory and a temporary record, no record renamed in.
    std::fs::create_dir_all(tmp.path().join("snapshots/123-1-0/fs")).unwrap();
    std::fs::write(tmp.path().join("metadata/abc.tmp-1"), b"{partial").unwrap();
    let mut n = 0;
    sn.walk(&mut |_| {
        n += 1;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(n, 0);
    assert_eq!(sn.cleanup().await.unwrap(), 1);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("snapshots"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("metadata"))
            .unwrap()
            .count(),
        0
    );

    // A crash between the two writes of commit: the stale active record is ignored.
    sn.prepare("k", None).await.unwrap();
    sn.commit("name", "k").await.unwrap();
    let recs: Vec<_> = std::fs::read_dir(tmp.path().join("metadata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&recs[0]).unwrap()).unwrap();
    let mut stale = committed.clone();
    stale["key"] = "k".into();
    stale["kind"] = "Active".into();
    let stale_path = tmp.path().join(format!(
        "metadata/{}.json",
        dist_content::sha256_of(b"k").digest()
    ));
    std::fs::write(&stale_path, serde_json::to_vec(&stale).unwrap()).unwrap();
    assert_eq!(sn.stat("k").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(sn.stat("name").await.unwrap().kind, SnapshotKind::Committed);
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test]
async fn overlay_snapshots_hold_only_their_changes_and_mount_to_the_flattened_tree() {
    if !is_root() {
        eprintln!("SKIPPED overlay snapshotter test: needs root for overlay whiteouts");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = OverlaySnapshotter::new(tmp.path()).unwrap();
    let p = MemProvider::default();
    let ls = layers(&p);
    let top = apply_layers(&ls, &sn, &p).await.unwrap();
    let m = sn.prepare("container", Some(top.as_ref())).await.unwrap();
    assert_eq!(m[0].kind, "overlay");
    let lower = m[0]
        .options
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap()
        .to_string();
    let lowers: Vec<&str> = lower.split(':').collect();
    assert_eq!(lowers.len(), 3, "nearest parent first");
    // The middle layer's upper dir records its whiteout as overlayfs wants it.
    let mid = Path::new(lowers[1]);
    let wh = std::fs::symlink_metadata(mid.join("etc/a")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    assert_eq!(
        xattr::get(mid.join("opt"), "trusted.overlay.opaque")
            .unwrap()
            .unwrap(),
        b"y"
    );

    let target = tmp.path().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let out = std::process::Command::new("mount")
        .args([
            "-t",
            "overlay",
            "overlay",
            "-o",
            &m[0].options.join(","),
            target.to_str().unwrap(),
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let got = listing(&target);
            let _ = std::process::Command::new("umount").arg(&target).status();
            assert_eq!(
                got,
                expected_flat(),
                "mounted overlay equals the flattened layers"
            );
            eprintln!("overlay mount: mounted for real and compared");
        }
        Ok(o) => eprintln!(
            "SKIPPED overlay mount (kernel refused): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("SKIPPED overlay mount (no mount command): {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_apply_layers_of_one_chain_both_succeed_and_share_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    let p = MemProvider::default();
    let ls = layers(&p);
    let (a, b) = tokio::join!(apply_layers(&ls, &sn, &p), apply_layers(&ls, &sn, &p));
    assert_eq!(a.unwrap(), b.unwrap());
    let mut kinds = Vec::new();
    sn.walk(&mut |i| {
        kinds.push(i.kind);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        kinds,
        vec![SnapshotKind::Committed; 3],
        "no active leftovers, no duplicates"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("snapshots"))
            .unwrap()
            .count(),
        3
    );
}

#[tokio::test]
async fn native_child_changes_never_reach_the_parent_in_an_extract_snapshot() {
    child_does_not_change_parent(Share::HardlinkExtract).await;
}

#[tokio::test]
async fn default_native_sharing_links_extract_snapshots_and_copies_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    let m = sn.prepare("base-active", None).await.unwrap();
    std::fs::write(bind_source(&m).join("f"), b"parent").unwrap();
    sn.commit("base", "base-active").await.unwrap();
    let base = bind_source(&sn.mounts("base").await.unwrap());
    let ino = |p: PathBuf| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());

    let key = format!("{}layer-2", dist_rootfs::EXTRACT_KEY_PREFIX);
    let extract = bind_source(&sn.prepare(&key, Some("base")).await.unwrap());
    assert_eq!(
        ino(extract.join("f")),
        ino(base.join("f")),
        "an extraction snapshot shares its parent's inodes"
    );
    let container = bind_source(&sn.prepare("container", Some("base")).await.unwrap());
    assert_ne!(
        ino(container.join("f")),
        ino(base.join("f")),
        "any other snapshot gets its own copy"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(container.join("f"))
        .unwrap()
        .write_all(b" changed in place")
        .unwrap();
    assert_eq!(std::fs::read(base.join("f")).unwrap(), b"parent");
    assert_eq!(std::fs::read(extract.join("f")).unwrap(), b"parent");
}

/// Layers where names change type and a whited-out directory comes back.
fn replacing_layers(p: &MemProvider) -> Vec<Layer> {
    vec![
        p.add(
            &TarLayer::new()
                .dir("d1", 0o755)
                .file("d1/f", b"f", 0o644)
                .file("f2", b"f2", 0o644)
                .dir("d3", 0o755)
                .file("d3/x", b"x", 0o644)
                .file("keep", b"k", 0o640)
                .link("keep", "keep-link")
                .build(),
        ),
        p.add(
            &TarLayer::new()
                .file("d1", b"now a file", 0o600)
                .dir("f2", 0o711)
                .file("f2/y", b"y", 0o644)
                .whiteout(".wh.d3")
                .build(),
        ),
        p.add(
            &TarLayer::new()
                .dir("d3", 0o750)
                .file("d3/z", b"z", 0o644)
                .build(),
        ),
    ]
}

fn expected_replaced() -> Vec<(String, String, u32, Vec<u8>)> {
    let e = |p: &str, k: &str, m: u32, d: &[u8]| (p.to_string(), k.to_string(), m, d.to_vec());
    vec![
        e("d1", "file", 0o600, b"now a file"),
        e("d3", "dir", 0o750, b""),
        e("d3/z", "file", 0o644, b"z"),
        e("f2", "dir", 0o711, b""),
        e("f2/y", "file", 0o644, b"y"),
        e("keep", "file", 0o640, b"k"),
        e("keep-link", "file", 0o640, b"k"),
    ]
}

/// `copy_mounted` of a view of `top` into a fresh directory under `tmp`.
async fn export_view(sn: &dyn Snapshotter, top: &str, tmp: &Path) -> PathBuf {
    let view = sn.view("export", Some(top)).await.unwrap();
    let target = tmp.join("exported");
    std::fs::create_dir(&target).unwrap();
    dist_rootfs::copy_mounted(&view, &target).unwrap();
    sn.remove("export").await.unwrap();
    target
}

#[tokio::test]
async fn a_native_view_is_its_parent_mounted_read_only_and_costs_no_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path().join("sn")).unwrap();
    let p = MemProvider::default();
    let top = apply_layers(&layers(&p), &sn, &p).await.unwrap();
    let view = sn.view("look", Some(top.as_ref())).await.unwrap();
    assert!(view[0].options.iter().any(|o| o == "ro"));
    let committed = sn.mounts(top.as_ref()).await.unwrap();
    assert_eq!(bind_source(&view), bind_source(&committed));
    assert_eq!(
        sn.remove(top.as_ref()).await.unwrap_err().kind(),
        ErrorKind::FailedPrecondition,
        "a viewed snapshot cannot be removed"
    );
    sn.remove("look").await.unwrap();
    sn.remove(top.as_ref()).await.unwrap();
}

#[tokio::test]
async fn copy_mounted_of_a_native_view_is_the_flattened_tree_and_shares_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path().join("sn")).unwrap();
    let p = MemProvider::default();
    for (ls, expected) in [
        (layers(&p), expected_flat()),
        (replacing_layers(&p), expected_replaced()),
    ] {
        let top = apply_layers(&ls, &sn, &p).await.unwrap();
        let out = export_view(&sn, top.as_ref(), tmp.path()).await;
        assert_eq!(listing(&out), expected);
        let snap = bind_source(&sn.mounts(top.as_ref()).await.unwrap());
        for entry in ["etc/b", "keep"] {
            if out.join(entry).exists() {
                std::fs::write(out.join(entry), b"changed").unwrap();
                assert_ne!(std::fs::read(snap.join(entry)).unwrap(), b"changed");
            }
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[tokio::test]
async fn copy_mounted_merges_overlay_layers_as_the_kernel_does() {
    if !is_root() {
        eprintln!("SKIPPED overlay copy_mounted test: needs root for overlay whiteouts");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = OverlaySnapshotter::new(tmp.path().join("sn")).unwrap();
    let p = MemProvider::default();
    for (ls, expected) in [
        (layers(&p), expected_flat()),
        (replacing_layers(&p), expected_replaced()),
    ] {
        let top = apply_layers(&ls, &sn, &p).await.unwrap();
        let out = export_view(&sn, top.as_ref(), tmp.path()).await;
        assert_eq!(listing(&out), expected);
        for dir in ["opt", "d3", ""] {
            if out.join(dir).is_dir() {
                assert_eq!(
                    xattr::get(out.join(dir), "trusted.overlay.opaque").unwrap(),
                    None,
                    "overlay bookkeeping is not copied"
                );
            }
        }
        if out.join("keep").exists() {
            assert!(common::same_file(&out, "keep", "keep-link"));
        }
        // The kernel's own merge of the same view, where it lets us mount.
        let view = sn.view("kernel", Some(top.as_ref())).await.unwrap();
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &view[0].options.join(",")])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            let kernel = listing(&mnt);
            let _ = std::process::Command::new("umount").arg(&mnt).status();
            assert_eq!(kernel, expected, "the kernel agrees");
        } else {
            eprintln!("SKIPPED comparing with a real overlay mount: the kernel refused");
        }
        sn.remove("kernel").await.unwrap();
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn copy_mounted_rejects_what_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let err = dist_rootfs::copy_mounted(&[], tmp.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn copy_mounted_of_a_bind_mount_copies_device_nodes_verbatim() {
    if !is_root() {
        eprintln!("SKIPPED: creating a device node needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path().join("sn")).unwrap();
    let m = sn.prepare("base-active", None).await.unwrap();
    let fs = bind_source(&m);
    // A 0/0 character device means "whiteout" only inside overlay layers; a bind mount
    // shows it as it is.
    let dir = rustix::fs::open(
        &fs,
        rustix::fs::OFlags::DIRECTORY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    rustix::fs::mknodat(
        &dir,
        "null-dev",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    sn.commit("base", "base-active").await.unwrap();
    let out = export_view(&sn, "base", tmp.path()).await;
    let st = std::fs::symlink_metadata(out.join("null-dev")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &st.file_type()
    ));
}

/// A provider whose blobs fail to read halfway, as a store on a failing disk would.
struct FailingProvider(MemProvider);

struct FailingReader(u64);

#[async_trait]
impl dist_content::ReaderAt for FailingReader {
    fn size(&self) -> u64 {
        self.0
    }
    async fn read_at(&self, _buf: &mut [u8], _offset: u64) -> dist_content::Result<usize> {
        Err(dist_content::Error::io(
            "read blob",
            std::io::Error::other("disk gone"),
        ))
    }
}

#[async_trait]
impl dist_content::Provider for FailingProvider {
    async fn reader_at(
        &self,
        desc: &Descriptor,
    ) -> dist_content::Result<Box<dyn dist_content::ReaderAt>> {
        let inner = self.0.reader_at(desc).await?;
        Ok(Box::new(FailingReader(inner.size())))
    }
}

/// The content error in `err`'s `source()` chain.
fn content_source(err: &dist_rootfs::Error) -> Option<&dist_content::Error> {
    let mut cur = std::error::Error::source(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<dist_content::Error>() {
            return Some(c);
        }
        cur = e.source();
    }
    None
}

#[tokio::test]
async fn a_missing_blob_is_the_content_stores_not_found_seen_through_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    let ls = layers(&MemProvider::default());
    let err = apply_layers(&ls, &sn, &MemProvider::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let content = content_source(&err).expect("the content error is the source");
    assert!(
        matches!(content, dist_content::Error::NotFound(_)),
        "{content:?}"
    );
}

#[tokio::test]
async fn a_read_failure_keeps_the_content_error_and_its_io_error_as_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    let p = FailingProvider(MemProvider::default());
    let ls = layers(&p.0);
    let err = apply_layers(&ls, &sn, &p).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    let content = content_source(&err).expect("the content error is the source");
    let io = std::error::Error::source(content)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .expect("and the io error below it");
    assert_eq!(io.to_string(), "disk gone");
}
