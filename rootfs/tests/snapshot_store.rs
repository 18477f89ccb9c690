//! The local snapshot store under hostile or unlucky conditions: corrupt records, copies
//! that must not hold the store lock, and extractions whose process died.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dist_rootfs::{ErrorKind, Mount, NativeSnapshotter, Share, SnapshotKind, Snapshotter};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn names(sn: &dyn Snapshotter) -> Vec<String> {
    let mut names = Vec::new();
    sn.walk(&mut |info| {
        names.push(info.name);
        Ok(())
    })
    .await
    .unwrap();
    names.sort();
    names
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A committed snapshot `name` holding `files` small files.
async fn committed_with_files(sn: &NativeSnapshotter, name: &str, files: usize) {
    let key = format!("{name}-active");
    let mounts = sn.prepare(&key, None).await.unwrap();
    let (dir, _) = Mount::apply_target(&mounts).unwrap();
    for i in 0..files {
        std::fs::write(dir.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    sn.commit(name, &key).await.unwrap();
}

#[tokio::test]
async fn a_corrupt_record_is_skipped_and_every_other_snapshot_stays_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    committed_with_files(&sn, "A", 1).await;
    sn.prepare("b", Some("A")).await.unwrap();
    std::fs::write(tmp.path().join("metadata/0badc0de.json"), b"{\"key\": tru").unwrap();

    assert_eq!(names(&sn).await, ["A", "b"]);
    assert_eq!(sn.stat("A").await.unwrap().kind, SnapshotKind::Committed);
    sn.prepare("c", Some("A")).await.unwrap();
    sn.remove("b").await.unwrap();
    assert_eq!(names(&sn).await, ["A", "c"]);
    // Cleanup cannot tell whose data the corrupt record owned: it removes nothing.
    let before = count(&tmp.path().join("snapshots"));
    assert_eq!(sn.cleanup().await.unwrap(), 0);
    assert_eq!(count(&tmp.path().join("snapshots")), before);
}

/// Takes the store's exclusive lock the way the store does.
fn store_lock(root: &Path) -> std::fs::File {
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("lock"))
        .unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
    f
}

#[test]
fn a_native_copy_of_the_parent_runs_without_the_store_lock() {
    const FILES: usize = 50;
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path())
        .unwrap()
        .with_share(Share::ReflinkOrCopy);
    rt.block_on(committed_with_files(&sn, "P", FILES));
    let parent_dirs = count(&tmp.path().join("snapshots"));

    // Another process holds the store lock for the whole copy.
    let lock = store_lock(tmp.path());
    let child = {
        let sn = sn.clone();
        rt.spawn(async move { sn.prepare("child", Some("P")).await })
    };
    // The copy completes in its own directory while the lock is held elsewhere.
    let deadline = Instant::now() + Duration::from_secs(60);
    let copied = loop {
        let done = std::fs::read_dir(tmp.path().join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().path().join("fs"))
            .any(|fs| count(&fs) == FILES)
            && count(&tmp.path().join("snapshots")) > parent_dirs;
        if done || Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        copied,
        "the parent was not copied while the store lock was held"
    );
    // The record waits for the lock: the snapshot does not exist yet.
    assert!(!child.is_finished());
    assert_eq!(rt.block_on(names(&sn)), ["P"]);
    // A cleanup racing for the lock leaves the directory being filled alone.
    let cleanup = {
        let sn = sn.clone();
        rt.spawn(async move { sn.cleanup().await })
    };
    drop(lock);
    let mounts = rt.block_on(child).unwrap().unwrap();
    assert_eq!(rt.block_on(cleanup).unwrap().unwrap(), 0);
    let (dir, _) = Mount::apply_target(&mounts).unwrap();
    assert_eq!(std::fs::read(dir.join("f7")).unwrap(), b"file 7");
    assert_eq!(count(&dir), FILES);
    assert_eq!(rt.block_on(names(&sn)), ["P", "child"]);
    assert_eq!(count(&tmp.path().join("locks")), 0, "no hold left behind");
}

/// Kills the child process when the test ends, passing or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const HOLDER_ROOT: &str = "DIST_ROOTFS_TEST_HOLDER_ROOT";

/// Run as a child process by the test below: prepares an extraction snapshot, says so,
/// and waits to be killed.
#[test]
#[ignore = "a helper process, run by an_extraction_is_abandoned_only_once_its_process_is_gone"]
fn holder_process_prepares_an_extraction_and_waits() {
    let Some(root) = std::env::var_os(HOLDER_ROOT) else {
        return;
    };
    let sn = NativeSnapshotter::new(root).unwrap();
    runtime()
        .block_on(sn.prepare("extract-held", None))
        .unwrap();
    // libtest has written "test <name> ... " without a newline: the line ends with this.
    println!("held");
    // Killed long before this; the bound only keeps a failed parent from leaving it behind.
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
fn an_extraction_is_abandoned_only_once_its_process_is_gone() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "holder_process_prepares_an_extraction_and_waits",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ROOT, tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder = KillOnDrop(holder);
    let out = BufReader::new(holder.0.stdout.take().unwrap());
    assert!(
        out.lines().any(|l| l.unwrap().ends_with("held")),
        "the holder process did not prepare its snapshot"
    );
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();

    // Alive: its extraction stays, whatever pid namespace either side is in.
    assert_eq!(
        rt.block_on(sn.remove_abandoned()).unwrap(),
        Vec::<String>::new()
    );
    let info = rt.block_on(sn.stat("extract-held")).unwrap();
    assert_eq!(info.kind, SnapshotKind::Active);

    // Killed: the kernel dropped its lock, so the snapshot is abandoned and goes.
    holder.0.kill().unwrap();
    holder.0.wait().unwrap();
    assert_eq!(
        rt.block_on(sn.remove_abandoned()).unwrap(),
        ["extract-held"]
    );
    let gone = rt.block_on(sn.stat("extract-held")).unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
    assert_eq!(count(&tmp.path().join("snapshots")), 0);
    assert_eq!(count(&tmp.path().join("locks")), 0);
}

#[tokio::test]
async fn this_process_holds_its_extractions_until_they_are_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::new(tmp.path()).unwrap();
    sn.prepare("extract-mine", None).await.unwrap();
    // Another handle on the same store, as a second pull in this process would have.
    let other = NativeSnapshotter::new(tmp.path()).unwrap();
    assert!(other.remove_abandoned().await.unwrap().is_empty());
    assert_eq!(count(&tmp.path().join("locks")), 1);
    sn.commit("X", "extract-mine").await.unwrap();
    assert_eq!(
        count(&tmp.path().join("locks")),
        0,
        "committing releases the hold"
    );
    // A snapshot that is not an extraction is never held past its prepare.
    sn.prepare("work", Some("X")).await.unwrap();
    assert_eq!(count(&tmp.path().join("locks")), 0);
    assert!(other.remove_abandoned().await.unwrap().is_empty());
    assert_eq!(names(&sn).await, ["X", "work"]);
}
