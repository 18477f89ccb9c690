//! End-to-end tests of `dist gc` and leases against a real registry (Debian's
//! docker-registry): what goes, what stays, collection while other processes pull, a killed
//! pull's lease, and the labels containerd writes for the same image.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dist_test_support::{AuthMode, Containerd, OciLayout, Platform, Push, Registry, host_arch};
use support::{Dist, listing, run};

fn registry() -> Registry {
    Registry::start(AuthMode::None).expect("start docker-registry")
}

fn platform() -> Platform {
    Platform::new("linux", host_arch())
}

/// Incompressible bytes, reproducible from `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    data
}

/// Digests of every blob under the root.
fn blob_digests(dist: &Dist) -> BTreeSet<String> {
    dist.ok(&["list", "-q"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Snapshot names of both snapshotters (a pull picks overlay where it works, else
/// native), read from their metadata records.
fn snapshot_names(dist: &Dist) -> BTreeSet<String> {
    ["native", "overlay"]
        .iter()
        .filter_map(|s| {
            std::fs::read_dir(dist.root.path().join("snapshots").join(s).join("metadata")).ok()
        })
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter_map(|v| v["key"].as_str().map(str::to_owned))
        .collect()
}

fn chain(dist: &Dist, reference: &str) -> String {
    dist.ok(&["pull", reference]).trim().to_owned()
}

#[test]
fn gc_after_images_rm_removes_only_what_the_removed_image_alone_used() {
    let reg = registry();
    let shared = OciLayout::tar_gz(&[("shared.txt", b"in both images\n")]).unwrap();
    let one = OciLayout::tar_gz(&[("one.txt", &noise(50_000, 1))]).unwrap();
    let two = OciLayout::tar_gz(&[("two.txt", b"only in two\n")]).unwrap();
    let mut layout = OciLayout::new().unwrap();
    let img1 = layout
        .add_image_with_layers(Some("one"), &platform(), &[shared.clone(), one])
        .unwrap();
    let img2 = layout
        .add_image_with_layers(Some("two"), &platform(), &[shared, two])
        .unwrap();
    reg.push(layout.path(), "one", "gc/one:latest", Push::oci())
        .unwrap();
    reg.push(layout.path(), "two", "gc/two:latest", Push::oci())
        .unwrap();
    let (ref1, ref2) = (
        format!("{}/gc/one:latest", reg.host()),
        format!("{}/gc/two:latest", reg.host()),
    );
    let dist = Dist::new();
    let top1 = chain(&dist, &ref1);
    let top2 = chain(&dist, &ref2);
    assert!(
        dist.ok(&["leases"]).lines().count() == 1,
        "pulls left leases"
    );
    let snaps_before = snapshot_names(&dist);
    assert_eq!(snaps_before.len(), 3, "{snaps_before:?}");

    // Nothing is garbage while both names exist.
    let idle = dist.ok(&["gc"]);
    assert!(
        idle.ends_with("removed 0 objects, 0 bytes freed\n"),
        "{idle}"
    );

    dist.ok(&["images", "rm", &ref1]);
    let dry = dist.ok(&["gc", "--dry-run"]);
    assert_eq!(blob_digests(&dist).len(), 7, "dry run removed something");
    let report = dist.ok(&["gc"]);
    assert_eq!(
        dry.replace("would remove", "removed"),
        report,
        "dry run and run differ"
    );

    // The manifest, config and unique layer of `one` went, with its top snapshot.
    let gone: BTreeSet<String> = [&img1.root, &img1.children[0], &img1.children[2]]
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    let left = blob_digests(&dist);
    let want: BTreeSet<String> = std::iter::once(&img2.root)
        .chain(&img2.children)
        .map(|d| d.digest().to_string())
        .collect();
    assert_eq!(left, want, "report:\n{report}");
    for d in &gone {
        assert!(report.contains(&format!("removed blob {d} ")), "{report}");
    }
    let freed: u64 = [&img1.root, &img1.children[0], &img1.children[2]]
        .iter()
        .map(|d| d.size())
        .sum();
    let listed: u64 = report
        .lines()
        .filter_map(|l| l.strip_suffix(" bytes"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(report_bytes(&report), listed, "{report}");
    assert!(listed >= freed, "{report}");
    let snaps = snapshot_names(&dist);
    assert!(!snaps.contains(&top1) && snaps.contains(&top2), "{snaps:?}");
    assert_eq!(
        snaps.len(),
        2,
        "the shared bottom snapshot must stay: {snaps:?}"
    );

    // The survivor unpacks as umoci unpacks it, from its snapshot and from its blobs.
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("bundle");
    run(std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:two", layout.path().display()))
        .arg(&bundle));
    let theirs = listing(&bundle.join("rootfs"));
    let ours = work.path().join("ours");
    dist.ok(&["unpack", &ref2, ours.to_str().unwrap()]);
    assert_eq!(listing(&ours), theirs);
    assert_eq!(dist.verified_blobs().len(), 4);
}

/// The total of a `dist gc` report's last line.
fn report_bytes(report: &str) -> u64 {
    let last = report.lines().last().unwrap_or_default();
    let words: Vec<&str> = last.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "bytes")
        .and_then(|i| words.get(i.wrapping_sub(1)))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn gc_in_a_loop_while_eight_processes_pull_unpack_and_push_loses_nothing() {
    let reg = registry();
    let base = OciLayout::tar_gz(&[("base.txt", &noise(200_000, 7))]).unwrap();
    let mut layout = OciLayout::new().unwrap();
    let mut refs = Vec::new();
    for i in 0..8u64 {
        let own = OciLayout::tar_gz(&[("own.txt", &noise(30_000, 100 + i))]).unwrap();
        let tag = format!("img{i}");
        layout
            .add_image_with_layers(Some(&tag), &platform(), &[base.clone(), own])
            .unwrap();
        reg.push(
            layout.path(),
            &tag,
            &format!("busy/{tag}:latest"),
            Push::oci(),
        )
        .unwrap();
        refs.push((tag.clone(), format!("{}/busy/{tag}:latest", reg.host())));
    }
    let dist = Dist::new();
    // Garbage for every collection to find while the pulls run.
    let stray = OciLayout::tar_gz(&[("stray.txt", b"stray")]).unwrap().0;
    let stray_out = dist.run_with(&["ingest", "stray"], Some(&stray));
    support::assert_success(&stray_out, &["ingest"]);

    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = Arc::clone(&stop);
        let root = dist.root.path().to_owned();
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new(support::dist_bin())
                    .arg("--root")
                    .arg(&root)
                    .args(["gc", "--lease-grace", "0s"])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "gc failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        })
    };
    let work = tempfile::tempdir().unwrap();
    let pullers: Vec<_> = refs
        .iter()
        .map(|(tag, reference)| {
            let dir = work.path().join(tag);
            let pushed = format!("{}/pushed/{tag}:latest", reg.host());
            let script = format!(
                "set -e; \"$0\" --root \"$1\" --plain-http pull {reference} >/dev/null; \
                 \"$0\" --root \"$1\" unpack {reference} {}; \
                 \"$0\" --root \"$1\" --plain-http push {pushed} {reference} >/dev/null",
                dir.display()
            );
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(support::dist_bin())
                .arg(dist.root.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (p, (tag, _)) in pullers.into_iter().zip(&refs) {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop.store(true, Ordering::Relaxed);
    let runs = collector.join().unwrap();
    assert!(runs > 0);
    // Each push, made while collections ran, reads back as the image it pushed.
    for (tag, _) in &refs {
        assert_eq!(
            reg.inspect_raw(&format!("pushed/{tag}:latest")).unwrap(),
            reg.inspect_raw(&format!("busy/{tag}:latest")).unwrap(),
            "{tag}"
        );
    }
    dist.ok(&["gc", "--lease-grace", "0s"]);

    // Every blob verifies, every image is whole, and each unpacks as umoci does.
    assert_eq!(
        dist.verified_blobs().len(),
        1 + 8 * 3,
        "{:?}",
        blob_digests(&dist)
    );
    for (tag, reference) in &refs {
        let bundle = work.path().join(format!("{tag}-umoci"));
        run(std::process::Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{tag}", layout.path().display()))
            .arg(&bundle));
        let theirs = listing(&bundle.join("rootfs"));
        assert_eq!(listing(&work.path().join(tag)), theirs, "{tag} during gc");
        let again = work.path().join(format!("{tag}-again"));
        dist.ok(&["unpack", reference, again.to_str().unwrap()]);
        assert_eq!(listing(&again), theirs, "{tag} after gc");
    }
    assert!(
        !dist
            .ok(&["list", "-q"])
            .contains(&dist_test_support::sha256(&stray))
    );
}

/// A proxy that slows the registry's responses while `slow` is set.
struct ThrottleProxy {
    addr: String,
}

impl ThrottleProxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(c2, s2, false));
                std::thread::spawn(move || pipe(server, client, true));
            }
        });
        ThrottleProxy { addr }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, slow: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        if slow {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_killed_pulls_lease_protects_its_partial_work_only_for_the_grace_period() {
    let reg = registry();
    let proxy = ThrottleProxy::start(reg.host());
    let mut layout = OciLayout::new().unwrap();
    let base = OciLayout::tar_gz(&[("base.txt", b"bottom layer\n")]).unwrap();
    let big = OciLayout::tar_gz(&[("big.bin", &noise(4 << 20, 3))]).unwrap();
    layout
        .add_image_with_layers(Some("big"), &platform(), &[base, big])
        .unwrap();
    reg.push(layout.path(), "big", "big:latest", Push::oci())
        .unwrap();
    let reference = format!("{}/big:latest", proxy.addr);

    let dist = Dist::new();
    let mut child = dist
        .cmd()
        .args(["pull", "--concurrency", "1", &reference])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active = dist.ok(&["active"]);
        let big_started = active.lines().any(|l| {
            l.starts_with("layer-")
                && l.split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse::<f64>().ok())
                    .is_some_and(|n| n > 0.0)
        });
        // The big layer is downloading and being unpacked into an active snapshot.
        if big_started
            && snapshot_names(&dist)
                .iter()
                .any(|k| k.starts_with("extract-"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the big layer never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let leases = dist.ok(&["leases"]);
    assert!(
        leases.contains("released") && leases.contains("dist.command=pull"),
        "{leases}"
    );

    // Within the grace period the lease keeps the ingest and the committed bottom layer.
    let within = dist.ok(&["gc", "--lease-grace", "1h"]);
    assert!(!within.contains("removed ingest"), "{within}");
    assert!(dist.ok(&["active"]).contains("layer-"));
    assert!(!within.contains("removed lease"), "{within}");
    assert_eq!(dist.ok(&["leases"]).lines().count(), 2);

    // Once it has passed, everything the dead pull left goes, the lease too.
    let after = dist.ok(&["gc", "--lease-grace", "0s"]);
    assert!(after.contains("removed ingest layer-"), "{after}");
    assert!(after.contains("removed lease "), "{after}");
    assert_eq!(
        dist.ok(&["active"]).lines().count(),
        1,
        "ingests left: {after}"
    );
    assert!(
        snapshot_names(&dist).is_empty(),
        "{:?}",
        snapshot_names(&dist)
    );
    assert_eq!(dist.ok(&["leases"]).lines().count(), 1);
    assert!(blob_digests(&dist).is_empty(), "{after}");
}

/// `key=value` labels under `containerd.io/gc.ref.` per digest, from `ctr content ls`.
/// The labels both tools must agree on: GC references and distribution sources.
fn compared_label(key: &str) -> bool {
    key.starts_with("containerd.io/gc.ref.")
        || key.starts_with("containerd.io/distribution.source.")
}

fn ctr_gc_labels(ctr_ls: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for line in ctr_ls.lines().skip(1) {
        let mut cols = line.split_whitespace();
        let Some(digest) = cols.next() else { continue };
        let labels = line
            .rsplit_once(char::is_whitespace)
            .map(|(_, l)| l)
            .unwrap_or("");
        let refs: BTreeMap<String, String> = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| compared_label(k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        out.insert(digest.to_owned(), refs);
    }
    out
}

#[test]
fn gc_reference_and_source_labels_equal_the_ones_containerd_writes_for_the_same_pull() {
    let reg = registry();
    let mut layout = OciLayout::new().unwrap();
    let a = OciLayout::tar_gz(&[("a.txt", b"a\n")]).unwrap();
    let b = OciLayout::tar_gz(&[("b.txt", b"b\n")]).unwrap();
    layout
        .add_image_with_layers(Some("img"), &platform(), &[a, b])
        .unwrap();
    reg.push(layout.path(), "img", "interop/img:latest", Push::oci())
        .unwrap();
    let reference = format!("{}/interop/img:latest", reg.host());

    let containerd = Containerd::start().unwrap();
    containerd
        .ctr_ok([
            "images",
            "pull",
            "--plain-http",
            "--snapshotter",
            "native",
            &reference,
        ])
        .unwrap();
    let theirs = ctr_gc_labels(&containerd.ctr_ok(["content", "ls"]).unwrap());

    // Compared with ctr's native pull: the same snapshotter, so the same label names.
    let dist = Dist::new();
    dist.ok(&["pull", "--snapshotter", "native", &reference]);
    let content = dist::content::LocalStore::open(dist.root.path().join("content")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut ours = BTreeMap::new();
    rt.block_on(async {
        use dist::content::Manager;
        content
            .walk(&dist::content::Filter::all(), &mut |info| {
                let refs: BTreeMap<String, String> = info
                    .labels
                    .into_iter()
                    .filter(|(k, _)| compared_label(k))
                    .collect();
                ours.insert(info.digest.to_string(), refs);
                Ok(())
            })
            .await
            .unwrap();
    });
    assert_eq!(ours.len(), 4, "{ours:?}");
    assert_eq!(ours, theirs);
    let source = "containerd.io/distribution.source.127.0.0.1";
    assert!(
        ours.values()
            .all(|l| l.get(source).map(String::as_str) == Some("interop/img")),
        "{ours:?}"
    );
    assert!(
        ours.values()
            .any(|l| l.contains_key("containerd.io/gc.ref.snapshot.native")),
        "{ours:?}"
    );
}

#[test]
fn an_imported_image_is_labelled_kept_by_gc_and_freed_once_its_name_is_removed() {
    let mut layout = OciLayout::new().unwrap();
    let built = layout
        .add_image(Some("v1"), &platform(), &[("i.txt", b"imported\n")])
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("img.tar");
    // GNU tar writes the archive: a layout tar our code did not write.
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(layout.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());

    let dist = Dist::new();
    dist.ok(&[
        "import",
        "--unpack",
        "--name",
        "example.com/imported:v1",
        archive.to_str().unwrap(),
    ]);
    let imported = blob_digests(&dist);
    assert_eq!(imported.len(), 1 + built.children.len(), "{imported:?}");
    // The import recorded containerd's references on the manifest, and released its lease.
    let content = dist::content::LocalStore::open(dist.root.path().join("content")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let labels = rt.block_on(async {
        use dist::content::Manager;
        content.info(built.root.digest()).await.unwrap().labels
    });
    assert!(
        labels.contains_key("containerd.io/gc.ref.content.config")
            && labels.contains_key("containerd.io/gc.ref.content.l.0"),
        "{labels:?}"
    );
    assert!(!dist.ok(&["leases"]).contains("import"));

    // The name keeps everything; without it, gc frees the blobs and the snapshot.
    dist.ok(&["gc"]);
    assert_eq!(blob_digests(&dist), imported);
    assert!(!snapshot_names(&dist).is_empty());
    dist.ok(&["images", "rm", "example.com/imported:v1"]);
    dist.ok(&["gc"]);
    assert!(blob_digests(&dist).is_empty(), "{:?}", blob_digests(&dist));
    assert!(snapshot_names(&dist).is_empty());
}
