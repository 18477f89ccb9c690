//! FsImageStore: CRUD semantics, name escaping, and several processes writing at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::describe;
use dist_images::{ErrorKind, FsImageStore, Image, ImageStore, escape_name};
use oci_spec::image::{Descriptor, MediaType};

fn target(seed: &str) -> Descriptor {
    describe(MediaType::ImageIndex, seed.as_bytes())
}

#[tokio::test]
async fn create_get_update_delete_follow_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsImageStore::open(dir.path()).unwrap();
    let name = "docker.io/library/alpine:3.20";

    assert_eq!(
        store.get(name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let update_absent = store.update(Image::new(name, target("a"))).await;
    assert_eq!(update_absent.unwrap_err().kind(), ErrorKind::NotFound);

    let created = store.create(Image::new(name, target("a"))).await.unwrap();
    assert_eq!(store.get(name).await.unwrap(), created);
    let again = store.create(Image::new(name, target("b"))).await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);

    let mut next = Image::new(name, target("b"));
    next.labels.insert("owner".into(), "test".into());
    let updated = store.update(next).await.unwrap();
    assert_eq!(updated.created, created.created);
    assert!(updated.updated >= created.updated);
    let read = store.get(name).await.unwrap();
    assert_eq!(read, updated);
    assert_eq!(read.target, target("b"));

    store.delete(name).await.unwrap();
    assert_eq!(
        store.get(name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete(name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn a_corrupt_record_is_skipped_by_list_and_reported_by_get() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsImageStore::open(dir.path()).unwrap();
    for name in ["example.com/a:1", "example.com/b:1", "example.com/c:1"] {
        store.create(Image::new(name, target(name))).await.unwrap();
    }
    // A torn write from another tool, a record that is not JSON, one that cannot be read.
    let b = dir
        .path()
        .join(format!("{}.json", escape_name("example.com/b:1")));
    let torn = std::fs::read(&b).unwrap();
    std::fs::write(&b, &torn[..torn.len() / 2]).unwrap();
    std::fs::write(dir.path().join("garbage.json"), b"\xff not json").unwrap();
    std::fs::create_dir(dir.path().join("a-directory.json")).unwrap();

    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["example.com/a:1", "example.com/c:1"]);
    let err = store.get("example.com/b:1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

const ODD_NAMES: &[&str] = &[
    "docker.io/library/redis:latest",
    "docker.io/library/redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "../../etc/passwd",
    ".hidden",
    "..",
    "a b/c%41",
    "a%20b/c%2541",
    "ünïcödé/näme:tag",
    "UPPER/lower:Tag",
];

#[tokio::test]
async fn any_reference_string_is_a_distinct_key_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let store = FsImageStore::open(&root).unwrap();
    let long = format!("registry.example.com/{}:tag", "x/".repeat(200));
    let mut names: Vec<String> = ODD_NAMES.iter().map(|s| s.to_string()).collect();
    names.push(long.clone());
    names.push(format!("{long}2"));
    for (i, n) in names.iter().enumerate() {
        store
            .create(Image::new(n, target(&i.to_string())))
            .await
            .unwrap();
    }
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            store.get(n).await.unwrap().target,
            target(&i.to_string()),
            "{n}"
        );
    }
    let keys: HashSet<String> = names.iter().map(|n| escape_name(n)).collect();
    assert_eq!(keys.len(), names.len());
    for k in &keys {
        assert!(
            k.len() < 250 && !k.contains('/') && !k.starts_with('.'),
            "{k}"
        );
    }
    // Every file is directly inside the root; nothing escaped it.
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(listed, sorted);
    assert!(!dir.path().join("etc").exists());
    assert_eq!(
        store.get("").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

const CHILD_ENV: &str = "DIST_IMAGES_STORE_CHILD";
const WRITERS: usize = 8;
const ROUNDS: usize = 15;
const FILLER: usize = 300;

fn shared_names() -> Vec<String> {
    let mut names: Vec<String> = (0..4)
        .map(|k| format!("registry.example/app:{k}"))
        .collect();
    names.push("docker.io/library/busybox@sha256:".to_string() + &"ab".repeat(32));
    names.push("../escape attempt".into());
    names
}

/// The record writer `w` stores in round `r`: every filler label carries `w` and `r`, so a
/// record mixed from two writes is detectable.
fn record(name: &str, w: usize, r: usize) -> Image {
    let mut image = Image::new(name, target(&format!("writer {w}")));
    image.labels.insert("writer".into(), w.to_string());
    image.labels.insert("round".into(), r.to_string());
    for i in 0..FILLER {
        image.labels.insert(
            format!("filler-{i:04}"),
            format!("{w}-{r}-{i}-{}", "z".repeat(20)),
        );
    }
    image
}

async fn child(root: &Path, w: usize) {
    let store = FsImageStore::open(root).unwrap();
    for r in 0..ROUNDS {
        for name in shared_names() {
            let image = record(&name, w, r);
            match store.create(image.clone()).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    store.update(image).await.unwrap();
                }
                Err(e) => panic!("writer {w}: {e}"),
            }
            // Reads interleaved with other writers' renames always see whole records.
            let _ = store.get(&name).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_updating_names_at_once_leave_complete_records() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (root, w) = spec.rsplit_once(':').unwrap();
        child(Path::new(root), w.parse().unwrap()).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let exe = std::env::current_exe().unwrap();
    let mut kids = Vec::new();
    for w in 0..WRITERS {
        let kid = tokio::process::Command::new(&exe)
            .args([
                "--exact",
                "eight_processes_updating_names_at_once_leave_complete_records",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{}:{w}", root.display()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        kids.push(kid);
    }
    for mut kid in kids {
        assert!(kid.wait().await.unwrap().success());
    }

    let store = FsImageStore::open(&root).unwrap();
    let names = shared_names();
    for name in &names {
        let image = store.get(name).await.unwrap();
        let w: usize = image.labels["writer"].parse().unwrap();
        let r: usize = image.labels["round"].parse().unwrap();
        assert_eq!(
            r,
            ROUNDS - 1,
            "{name}: the last write of every writer is its last round"
        );
        let mut want = record(name, w, r);
        (want.created, want.updated) = (image.created, image.updated);
        assert_eq!(image, want);
    }
    let listed: HashSet<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, names.iter().cloned().collect());
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
