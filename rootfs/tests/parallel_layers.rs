//! `apply_layers` on a snapshotter that can rebase (overlay): every layer applied at once,
//! committed parent first; and the overlay probe.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::Layer as TarLayer;
use dist_rootfs::{
    ErrorKind, Layer, Mount, NativeSnapshotter, OverlaySnapshotter, Result, SnapshotInfo,
    SnapshotKind, Snapshotter, UnpackOptions, Usage, WhiteoutMode, apply_layers, apply_layers_with,
    chain_ids, copy_mounted,
};
use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use tokio::sync::watch;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// How a [`GatedProvider`] holds back a blob's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Served at once.
    Open,
    /// Its first read waits until every blob of the provider has been opened.
    AllOpened,
    /// Its first read waits until every other blob has been read to its end.
    OthersRead,
    /// Never delivers a byte (a download that never arrives).
    Never,
}

/// An in-memory content store whose readers can be made to wait for each other.
#[derive(Default)]
struct GatedProvider {
    blobs: Mutex<HashMap<String, (Vec<u8>, Gate)>>,
    opened: Arc<watch::Sender<usize>>,
    read_to_end: Arc<watch::Sender<usize>>,
}

struct GatedReader {
    data: Vec<u8>,
    gate: Gate,
    blobs: usize,
    opened: watch::Receiver<usize>,
    read_to_end: Arc<watch::Sender<usize>>,
}

#[async_trait]
impl dist_content::ReaderAt for GatedReader {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    async fn read_at(&self, buf: &mut [u8], offset: u64) -> dist_content::Result<usize> {
        if offset == 0 {
            match self.gate {
                Gate::Open => {}
                Gate::AllOpened => {
                    let n = self.blobs;
                    self.opened.clone().wait_for(|o| *o >= n).await.unwrap();
                }
                Gate::OthersRead => {
                    let n = self.blobs - 1;
                    self.read_to_end
                        .subscribe()
                        .wait_for(|r| *r >= n)
                        .await
                        .unwrap();
                }
                Gate::Never => std::future::pending().await,
            }
        }
        let start = (offset as usize).min(self.data.len());
        let n = buf.len().min(self.data.len() - start);
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        if n == 0 && self.gate != Gate::OthersRead {
            self.read_to_end.send_modify(|r| *r += 1);
        }
        Ok(n)
    }
}

#[async_trait]
impl dist_content::Provider for GatedProvider {
    async fn reader_at(
        &self,
        desc: &Descriptor,
    ) -> dist_content::Result<Box<dyn dist_content::ReaderAt>> {
        let (blob, blobs) = {
            let blobs = self.blobs.lock().unwrap();
            (blobs.get(desc.digest().as_ref()).cloned(), blobs.len())
        };
        let (data, gate) =
            blob.ok_or_else(|| dist_content::Error::NotFound(desc.digest().to_string()))?;
        self.opened.send_modify(|o| *o += 1);
        Ok(Box::new(GatedReader {
            data,
            gate,
            blobs,
            opened: self.opened.subscribe(),
            read_to_end: Arc::clone(&self.read_to_end),
        }))
    }
}

impl GatedProvider {
    /// Stores `tar` gzipped and returns the layer (DiffID of the tar, descriptor of the blob).
    fn add(&self, tar: &[u8], gate: Gate) -> Layer {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(tar).unwrap();
        let blob = gz.finish().unwrap();
        let desc = DescriptorBuilder::default()
            .media_type(MediaType::ImageLayerGzip)
            .digest(dist_content::sha256_of(&blob))
            .size(blob.len() as u64)
            .build()
            .unwrap();
        self.blobs
            .lock()
            .unwrap()
            .insert(desc.digest().to_string(), (blob, gate));
        Layer {
            diff_id: dist_content::sha256_of(tar),
            blob: desc,
        }
    }
}

/// Four layers whose whiteouts, opaque directories and hardlinks reach across layers.
fn tars() -> Vec<Vec<u8>> {
    vec![
        TarLayer::new()
            .dir("etc", 0o755)
            .file("etc/a", b"a", 0o644)
            .file("etc/b", b"b", 0o644)
            .dir("opt", 0o755)
            .file("opt/x", b"x", 0o644)
            .dir("opt/sub", 0o700)
            .file("opt/sub/deep", b"deep", 0o600)
            .file("usr", b"a file, replaced by a directory later", 0o644)
            .build(),
        TarLayer::new()
            .dir("etc", 0o755)
            .whiteout("etc/.wh.a")
            .file("etc/c", b"c", 0o600)
            .dir("opt", 0o755)
            .whiteout("opt/.wh..wh..opq")
            .file("opt/y", b"y", 0o644)
            .whiteout(".wh.usr")
            .dir("usr", 0o755)
            .file("usr/one", b"1", 0o644)
            .link("usr/one", "usr/one-again")
            .build(),
        TarLayer::new()
            .file("etc/b", b"b2", 0o644)
            .symlink("b", "etc/link")
            .file("etc/a", b"a is back", 0o644)
            .build(),
        TarLayer::new()
            .dir("opt", 0o711)
            .whiteout("opt/.wh.y")
            .file("opt/z", b"z", 0o644)
            .link("opt/z", "opt/z2")
            .whiteout("etc/.wh.c")
            .build(),
    ]
}

fn layers(p: &GatedProvider, gates: &[Gate]) -> Vec<Layer> {
    tars()
        .iter()
        .zip(gates)
        .map(|(t, g)| p.add(t, *g))
        .collect()
}

/// The flattened tree of committed `top` in `sn`, copied through a view.
async fn flattened(sn: &dyn Snapshotter, top: &str, out: &Path) {
    std::fs::create_dir(out).unwrap();
    let key = format!("view-{}", out.display());
    let mounts = sn.view(&key, Some(top)).await.unwrap();
    copy_mounted(&mounts, out).unwrap();
    sn.remove(&key).await.unwrap();
}

async fn snapshots(sn: &dyn Snapshotter) -> Vec<SnapshotInfo> {
    let mut all = Vec::new();
    sn.walk(&mut |i| {
        all.push(i);
        Ok(())
    })
    .await
    .unwrap();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

#[tokio::test]
async fn parallel_overlay_builds_the_tree_a_sequential_apply_builds() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = GatedProvider::default();
    let ls = layers(&p, &[Gate::Open; 4]);
    let parallel = OverlaySnapshotter::new(dir.path().join("parallel")).unwrap();
    let sequential = OverlaySnapshotter::new(dir.path().join("sequential")).unwrap();
    let native = NativeSnapshotter::new(dir.path().join("native")).unwrap();
    let top = apply_layers(&ls, &parallel, &p).await.unwrap();
    let one = UnpackOptions::default().concurrency(1);
    assert_eq!(
        apply_layers_with(&ls, &sequential, &p, one).await.unwrap(),
        top
    );
    assert_eq!(apply_layers(&ls, &native, &p).await.unwrap(), top);

    let [a, b, c] =
        ["parallel", "sequential", "native"].map(|n| dir.path().join(format!("{n}.out")));
    flattened(&parallel, top.as_ref(), &a).await;
    flattened(&sequential, top.as_ref(), &b).await;
    flattened(&native, top.as_ref(), &c).await;
    let tree = common::snapshot(&a);
    assert_eq!(tree, common::snapshot(&b));
    assert_eq!(tree, common::snapshot(&c));
    assert!(tree.contains_key(Path::new("usr/one-again")));
    assert!(
        !tree.contains_key(Path::new("opt/x")),
        "opaque across layers"
    );
    assert!(
        !tree.contains_key(Path::new("opt/y")),
        "whiteout across layers"
    );
    assert!(!tree.contains_key(Path::new("etc/c")));
    assert!(common::same_file(&a, "usr/one", "usr/one-again"));
    assert!(common::same_file(&a, "opt/z", "opt/z2"));

    // Same chain, same parents: a parallel apply records what a sequential one does.
    let chain = chain_ids(&ls.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
    let (pa, se) = (snapshots(&parallel).await, snapshots(&sequential).await);
    assert_eq!(pa.len(), 4);
    for (x, y) in pa.iter().zip(&se) {
        assert_eq!((&x.name, &x.parent, x.kind), (&y.name, &y.parent, y.kind));
        assert_eq!(x.kind, SnapshotKind::Committed);
    }
    assert_eq!(pa[0].name.as_str(), pa[0].name.as_str());
    assert!(
        chain
            .iter()
            .all(|c| pa.iter().any(|i| i.name == c.as_ref()))
    );
    // Each layer's own directory holds the same entries, whiteout devices included.
    for c in &chain {
        assert_eq!(
            parallel.usage(c.as_ref()).await.unwrap(),
            sequential.usage(c.as_ref()).await.unwrap(),
            "{c}"
        );
    }
}

/// Forwards to an overlay snapshotter and records each commit as (name, parent).
struct Recording {
    inner: OverlaySnapshotter,
    commits: Mutex<Vec<(String, Option<String>)>>,
}

#[async_trait]
impl Snapshotter for Recording {
    async fn stat(&self, key: &str) -> Result<SnapshotInfo> {
        self.inner.stat(key).await
    }
    async fn usage(&self, key: &str) -> Result<Usage> {
        self.inner.usage(key).await
    }
    async fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.inner.mounts(key).await
    }
    async fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.inner.prepare(key, parent).await
    }
    async fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        self.inner.view(key, parent).await
    }
    async fn commit(&self, name: &str, key: &str) -> Result<()> {
        let parent = self.inner.stat(key).await?.parent;
        self.commits.lock().unwrap().push((name.to_owned(), parent));
        self.inner.commit(name, key).await
    }
    async fn remove(&self, key: &str) -> Result<()> {
        self.inner.remove(key).await
    }
    async fn walk(&self, f: &mut (dyn FnMut(SnapshotInfo) -> Result<()> + Send)) -> Result<()> {
        self.inner.walk(f).await
    }
    fn rebase_whiteouts(&self) -> Option<WhiteoutMode> {
        self.inner.rebase_whiteouts()
    }
    async fn commit_onto(&self, name: &str, key: &str, parent: Option<&str>) -> Result<()> {
        let recorded = (name.to_owned(), parent.map(str::to_owned));
        self.commits.lock().unwrap().push(recorded);
        self.inner.commit_onto(name, key, parent).await
    }
}

/// Fails the test instead of hanging it when layers wait for each other forever.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("layers waited for each other: they did not run at once")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_run_at_once_and_commit_parent_first() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sn = Recording {
        inner: OverlaySnapshotter::new(dir.path()).unwrap(),
        commits: Mutex::default(),
    };
    // No layer delivers a byte before all four were opened, and the bottom one only after
    // the three above it were read to their end: one after another, this never finishes.
    let p = GatedProvider::default();
    let gates = [
        Gate::OthersRead,
        Gate::AllOpened,
        Gate::AllOpened,
        Gate::AllOpened,
    ];
    let ls = layers(&p, &gates);
    let opts = UnpackOptions::default().concurrency(4);
    let top = bounded(apply_layers_with(&ls, &sn, &p, opts))
        .await
        .unwrap();
    let chain = chain_ids(&ls.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>());
    assert_eq!(top, chain[3]);
    let expected: Vec<(String, Option<String>)> = chain
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let parent = i.checked_sub(1).map(|p| chain[p].to_string());
            (c.to_string(), parent)
        })
        .collect();
    assert_eq!(*sn.commits.lock().unwrap(), expected);
    for (i, info) in snapshots(&sn).await.iter().enumerate() {
        assert_eq!(info.kind, SnapshotKind::Committed, "{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_middle_layer_keeps_those_below_and_nothing_from_it_up() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sn = OverlaySnapshotter::new(dir.path()).unwrap();
    let p = GatedProvider::default();
    // Layer 2 is not what the config says; layer 3's download never arrives (it must be
    // stopped, not waited for); layers 0 and 1 apply only once all four were opened.
    let mut ls = layers(
        &p,
        &[Gate::AllOpened, Gate::AllOpened, Gate::Open, Gate::Never],
    );
    ls[2].diff_id = dist_content::sha256_of(b"something else");
    let good = chain_ids(
        &ls[..2]
            .iter()
            .map(|l| l.diff_id.clone())
            .collect::<Vec<_>>(),
    );
    let opts = UnpackOptions::default().concurrency(4);
    let err = bounded(apply_layers_with(&ls, &sn, &p, opts))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(err.to_string().contains("DiffID"), "{err}");
    let left = snapshots(&sn).await;
    let names: Vec<&str> = left.iter().map(|i| i.name.as_str()).collect();
    let mut want: Vec<&str> = good.iter().map(|c| c.as_ref()).collect();
    want.sort();
    assert_eq!(names, want, "layers below committed, nothing else left");
    assert!(left.iter().all(|i| i.kind == SnapshotKind::Committed));
    assert_eq!(
        sn.stat(good[1].as_ref()).await.unwrap().parent.as_deref(),
        Some(good[0].as_ref())
    );
    // No directory of a removed snapshot is left behind either.
    let dirs = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(dirs, 2);

    // Pulled again with a good layer 2, the committed prefix is kept and the rest applied.
    let p2 = GatedProvider::default();
    let ls2 = layers(&p2, &[Gate::Open; 4]);
    let top = apply_layers(&ls2, &sn, &p2).await.unwrap();
    assert_eq!(
        sn.stat(top.as_ref()).await.unwrap().kind,
        SnapshotKind::Committed
    );
}

#[tokio::test]
async fn commit_onto_needs_a_snapshot_prepared_without_parent() {
    let dir = tempfile::tempdir().unwrap();
    let sn = OverlaySnapshotter::new(dir.path()).unwrap();
    sn.prepare("a-key", None).await.unwrap();
    sn.commit("a", "a-key").await.unwrap();
    sn.prepare("b-key", Some("a")).await.unwrap();
    let err = sn.commit_onto("b", "b-key", Some("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    sn.prepare("c-key", None).await.unwrap();
    let err = sn
        .commit_onto("c", "c-key", Some("missing"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    sn.commit_onto("c", "c-key", Some("a")).await.unwrap();
    assert_eq!(sn.stat("c").await.unwrap().parent.as_deref(), Some("a"));
    assert!(sn.remove("a").await.is_err(), "a is c's parent now");

    // A snapshotter that cannot rebase says so and refuses.
    let native = NativeSnapshotter::new(dir.path().join("native")).unwrap();
    assert_eq!(native.rebase_whiteouts(), None);
    native.prepare("k", None).await.unwrap();
    let err = native.commit_onto("n", "k", None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
}

/// Runs `f` on a thread of its own with `drop` removed from its effective capabilities
/// (capabilities are per thread on Linux, so the rest of the test process keeps them).
fn without_capability<T: Send>(
    drop: rustix::thread::CapabilitySet,
    f: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut caps = rustix::thread::capabilities(None).unwrap();
            caps.effective.remove(drop);
            rustix::thread::set_capabilities(None, caps).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn the_overlay_probe_fails_where_whiteouts_cannot_be_written() {
    if !is_root() {
        eprintln!("skipped: overlay needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("snapshots");
    assert!(OverlaySnapshotter::supported(&root));
    // No trusted.* xattr (the opaque marker) and no mount without CAP_SYS_ADMIN. (A 0/0
    // whiteout device needs no CAP_MKNOD on kernels since 5.8, so dropping that proves
    // nothing.)
    let refused = without_capability(rustix::thread::CapabilitySet::SYS_ADMIN, || {
        OverlaySnapshotter::supported(&root)
    });
    assert!(!refused);
    // Nothing of the tries is left behind.
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    assert!(!OverlaySnapshotter::supported(Path::new("/proc/self")));
}
