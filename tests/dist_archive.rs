//! Archives and OCI layouts against the tools that write and read them: skopeo (`oci:`,
//! `oci-archive:`, `docker-archive:`), umoci and containerd's `ctr`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Dist, listing, run, umoci_image};

fn skopeo_copy(from: &str, to: &str) {
    run(Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(from)
        .arg(to));
}

/// `umoci unpack` of `<layout>:<tag>`: the reference tree every unpack must equal.
fn umoci_listing(layout: &Path, tag: &str, work: &Path) -> BTreeMap<String, String> {
    let bundle = work.join(format!("umoci-{tag}"));
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle));
    listing(&bundle.join("rootfs"))
}

fn dist_unpack(dist: &Dist, reference: &str, dir: &Path) -> BTreeMap<String, String> {
    dist.ok(&["unpack", reference, dir.to_str().unwrap()]);
    listing(dir)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The umoci image, and its tree as umoci unpacks it.
fn image(work: &Path) -> (PathBuf, BTreeMap<String, String>) {
    let layout = umoci_image(work);
    let theirs = umoci_listing(&layout, "img", work);
    (layout, theirs)
}

#[test]
fn pull_from_a_skopeo_written_layout_unpacks_like_umoci() {
    let work = tempfile::tempdir().unwrap();
    let (layout, theirs) = image(work.path());
    let copied = work.path().join("skopeo-layout");
    skopeo_copy(
        &format!("oci:{}:img", layout.display()),
        &format!("oci:{}:v1", copied.display()),
    );
    let dist = Dist::new();
    let locator = format!("oci:{}:v1", copied.display());
    let chain = dist.ok(&["pull", &locator]);
    assert!(chain.trim().starts_with("sha256:"), "{chain}");
    assert!(dist.ok(&["images"]).contains(&locator));
    let ours = work.path().join("ours");
    assert_eq!(dist_unpack(&dist, &locator, &ours), theirs);
    // A missing tag is a clean not-found error.
    let err = dist.fails(&["pull", &format!("oci:{}:nope", copied.display())], None);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn pull_from_a_umoci_written_layout_unpacks_like_umoci() {
    let work = tempfile::tempdir().unwrap();
    let (layout, theirs) = image(work.path());
    let dist = Dist::new();
    let locator = format!("oci:{}:img", layout.display());
    dist.ok(&["pull", &locator]);
    let ours = work.path().join("ours");
    assert_eq!(dist_unpack(&dist, &locator, &ours), theirs);
}

#[test]
fn skopeo_written_archives_import_and_unpack_equal_to_umoci() {
    let work = tempfile::tempdir().unwrap();
    let (layout, theirs) = image(work.path());
    let source = format!("oci:{}:img", layout.display());
    for (i, dest) in ["oci-archive", "docker-archive"].iter().enumerate() {
        let archive = work.path().join(format!("{dest}.tar"));
        let target = match *dest {
            "oci-archive" => format!("oci-archive:{}:v1", archive.display()),
            _ => format!(
                "docker-archive:{}:example.com/skopeo/app:v1",
                archive.display()
            ),
        };
        skopeo_copy(&source, &target);
        let dist = Dist::new();
        let name = "example.com/imported/app:1";
        let out = dist.ok(&["import", "--unpack", "--name", name, path_str(&archive)]);
        assert!(out.starts_with(name), "{dest}: {out}");
        let ours = work.path().join(format!("ours-{i}"));
        assert_eq!(dist_unpack(&dist, name, &ours), theirs, "{dest}");
        // Every committed blob hashes to its name.
        assert!(!dist.verified_blobs().is_empty());
    }
}

#[test]
fn dist_export_read_by_skopeo_then_umoci_unpack_equals_dist_unpack() {
    let work = tempfile::tempdir().unwrap();
    let (layout, theirs) = image(work.path());
    let dist = Dist::new();
    let name = "example.com/exported/app:1";
    let src = work.path().join("src.tar");
    skopeo_copy(
        &format!("oci:{}:img", layout.display()),
        &format!("oci-archive:{}:x", src.display()),
    );
    dist.ok(&["import", "--name", name, path_str(&src)]);
    let ours = dist_unpack(&dist, name, &work.path().join("ours"));
    assert_eq!(ours, theirs);

    let out = work.path().join("out.tar");
    dist.ok(&["export", path_str(&out), name]);
    // Read back through both of skopeo's archive readers.
    let back = work.path().join("back");
    skopeo_copy(
        &format!("oci-archive:{}:1", out.display()),
        &format!("oci:{}:oci", back.display()),
    );
    skopeo_copy(
        &format!("docker-archive:{}", out.display()),
        &format!("oci:{}:docker", back.display()),
    );
    assert_eq!(umoci_listing(&back, "oci", work.path()), ours);
    assert_eq!(umoci_listing(&back, "docker", work.path()), ours);

    // To stdout and back in from stdin.
    let piped = Dist::new();
    let tar = run(dist.cmd().args(["export", "-", name]));
    let import = piped.run_with(&["import", "-"], Some(&tar));
    support::assert_success(&import, &["import", "-"]);
    assert_eq!(String::from_utf8_lossy(&import.stdout).trim(), name);
}

#[test]
fn containerd_reads_dist_exports_and_dist_imports_ctr_exports_byte_for_byte() {
    let containerd = dist_test_support::Containerd::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = image(work.path());
    let dist = Dist::new();
    let name = "example.com/ctr/app:1";
    let src = work.path().join("src.tar");
    skopeo_copy(
        &format!("oci:{}:img", layout.display()),
        &format!("oci-archive:{}:x", src.display()),
    );
    dist.ok(&["import", "--name", name, path_str(&src)]);
    let ours = work.path().join("dist.tar");
    dist.ok(&["export", path_str(&ours), name]);

    containerd
        .ctr_ok(["images", "import", "--no-unpack", path_str(&ours)])
        .unwrap();
    let listed = containerd.ctr_ok(["images", "ls", "-q"]).unwrap();
    assert!(listed.lines().any(|l| l == name), "ctr lists {listed:?}");

    let theirs = work.path().join("ctr.tar");
    containerd
        .ctr_ok(["images", "export", path_str(&theirs), name])
        .unwrap();
    let fresh = Dist::new();
    let out = fresh.ok(&["import", path_str(&theirs)]);
    assert_eq!(out.trim(), name);
    // Every blob of ctr's archive is in the store, byte for byte.
    let mut archive = tar::Archive::new(std::fs::File::open(&theirs).unwrap());
    let mut blobs = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let Some(rest) = path.strip_prefix("blobs/") else {
            continue;
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let stored = std::fs::read(fresh.root.path().join("content/blobs").join(rest)).unwrap();
        assert!(stored == bytes, "{path} differs");
        blobs += 1;
    }
    assert!(blobs >= 4, "ctr's archive held {blobs} blobs");
    fresh.verified_blobs();

    // ctr's archive, extracted, is a layout `dist pull` reads by tag or by full name.
    let extracted = work.path().join("ctr-layout");
    std::fs::create_dir_all(&extracted).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&theirs)
        .arg("-C")
        .arg(&extracted));
    let pulled = Dist::new();
    for tag in ["1", name] {
        let chain = pulled.ok(&["pull", &format!("oci:{}:{tag}", extracted.display())]);
        assert!(chain.trim().starts_with("sha256:"), "{tag}: {chain}");
    }
}

/// The umoci image's manifest descriptor (with its platform) and the archive entries of
/// its blobs.
fn manifest_and_blobs(layout: &Path) -> (serde_json::Value, Vec<(String, Vec<u8>)>) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut manifest = index["manifests"][0].clone();
    manifest.as_object_mut().unwrap().remove("annotations");
    let mut blobs = Vec::new();
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        blobs.push((
            format!("blobs/sha256/{name}"),
            std::fs::read(entry.path()).unwrap(),
        ));
    }
    (manifest, blobs)
}

fn write_tar(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn an_index_naming_two_platforms_with_one_present_imports_and_unpacks_that_one() {
    let work = tempfile::tempdir().unwrap();
    let (layout, theirs) = image(work.path());
    let (mut manifest, mut files) = manifest_and_blobs(&layout);
    let host = dist::images::platforms::default_platform();
    manifest["platform"] =
        serde_json::json!({"os": "linux", "architecture": host.architecture().to_string()});
    let other_arch = if host.architecture().to_string() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let absent = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "ab".repeat(32)),
        "size": 1234,
        "platform": {"os": "linux", "architecture": other_arch},
    });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest, absent],
    }))
    .unwrap();
    let index_digest = dist::content::sha256_of(&index);
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest.to_string(),
            "size": index.len(),
            "annotations": {"io.containerd.image.name": "example.com/multi/app:1"},
        }],
    }))
    .unwrap();
    files.push((format!("blobs/sha256/{}", index_digest.digest()), index));
    files.insert(0, ("index.json".into(), top));
    let archive = work.path().join("partial.tar");
    write_tar(&archive, &files);

    let dist = Dist::new();
    let out = dist.run_with(&["import", "--unpack", path_str(&archive)], None);
    support::assert_success(&out, &["import", "--unpack"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("skipped linux/{other_arch}")),
        "{stderr}"
    );
    let ours = work.path().join("ours");
    assert_eq!(dist_unpack(&dist, "example.com/multi/app:1", &ours), theirs);
}

#[test]
fn corrupt_and_truncated_archives_fail_with_one_line_and_commit_nothing_wrong() {
    let work = tempfile::tempdir().unwrap();
    let (layout, _) = image(work.path());
    let (manifest, files) = manifest_and_blobs(&layout);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [manifest],
    }))
    .unwrap();
    let mut good = vec![("index.json".to_owned(), index)];
    good.extend(files);
    // The largest blob is a layer: flip one byte of it, keeping its name.
    let largest = (0..good.len()).max_by_key(|&i| good[i].1.len()).unwrap();
    let mut corrupt = good.clone();
    corrupt[largest].1[40] ^= 0xff;
    let corrupt_path = work.path().join("corrupt.tar");
    write_tar(&corrupt_path, &corrupt);
    let whole = work.path().join("whole.tar");
    write_tar(&whole, &good);
    let bytes = std::fs::read(&whole).unwrap();
    let truncated_path = work.path().join("truncated.tar");
    std::fs::write(&truncated_path, &bytes[..bytes.len() * 2 / 3]).unwrap();

    for (case, path) in [("corrupt", &corrupt_path), ("truncated", &truncated_path)] {
        let dist = Dist::new();
        let err = dist.fails(
            &["import", "--name", "example.com/bad:1", path_str(path)],
            None,
        );
        assert!(err.starts_with("error: "), "{case}: {err}");
        // Nothing committed under a wrong digest, and the corrupt layer not at all.
        let committed = dist.verified_blobs();
        if case == "corrupt" {
            let name = &corrupt[largest].0;
            assert!(
                !committed.iter().any(|(p, _)| p.ends_with(name)),
                "{case}: the corrupt blob was committed"
            );
        }
        let images = dist.ok(&["images"]);
        assert_eq!(
            images.lines().count(),
            1,
            "{case}: an image was recorded: {images}"
        );
    }
}

#[test]
fn a_layout_written_through_the_layout_pusher_is_read_by_umoci_and_skopeo() {
    use dist::content::LayoutStore;
    use dist::remotes::{LayoutResolver, Resolver};

    let work = tempfile::tempdir().unwrap();
    let (layout, theirs) = image(work.path());
    let out = work.path().join("pushed");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // umoci's layout, read as a store; pushed, children first, into a new layout.
        let source = LayoutStore::open(&layout).unwrap();
        let root = source.resolve("img").await.unwrap();
        let manifest = dist::images::read_manifest(&source, &root, &Default::default())
            .await
            .unwrap();
        let pusher = LayoutResolver::new()
            .pusher(&format!("oci:{}:v1", out.display()))
            .await
            .unwrap();
        let mut descs = vec![manifest.config().clone()];
        descs.extend(manifest.layers().iter().cloned());
        descs.push(root);
        for desc in &descs {
            pusher.push(desc, &source).await.unwrap();
        }
    });
    assert_eq!(umoci_listing(&out, "v1", work.path()), theirs);
    skopeo_copy(
        &format!("oci:{}:v1", out.display()),
        &format!("oci:{}:copy", work.path().join("copy").display()),
    );
}
