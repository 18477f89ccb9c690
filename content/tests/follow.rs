//! Reading blobs while they are being ingested: `LocalStore::follow`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dist_content::{
    ErrorKind, FollowError, FollowOptions, IngestManager, Ingester, LocalStore, ReaderAt,
    ReaderAtReader, WriterOpts,
};
use oci_spec::image::{Descriptor, DescriptorBuilder, MediaType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHILD_ROOT: &str = "DIST_FOLLOW_CHILD_ROOT";
const CHILD_HANG: &str = "DIST_FOLLOW_CHILD_HANG";
const SIZE: usize = 3 << 20;

fn data() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 7 % 251) as u8).collect()
}

fn desc_of(data: &[u8]) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::ImageLayerGzip)
        .digest(dist_content::sha256_of(data))
        .size(data.len() as u64)
        .build()
        .unwrap()
}

/// Reads `reader` to its end or first error; returns what was read and the error.
async fn drain(reader: &dyn ReaderAt) -> (Vec<u8>, Option<dist_content::Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match reader.read_at(&mut buf, out.len() as u64).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn follow_error(e: &dist_content::Error) -> &FollowError {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<FollowError>())
        .unwrap_or_else(|| panic!("not a follow error: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_streams_a_slow_writer_and_ends_with_the_committed_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let reader = store.follow().reader(&desc);
    let (got_first, first) = tokio::sync::oneshot::channel();
    let follower = tokio::spawn(async move {
        let mut out = vec![0u8; 1];
        assert_eq!(reader.read_at(&mut out, 0).await.unwrap(), 1);
        got_first.send(()).unwrap();
        let mut rest = Vec::new();
        ReaderAtReader::new(Box::new(reader))
            .read_to_end(&mut rest)
            .await
            .unwrap();
        rest
    });
    let mut w = store
        .writer(WriterOpts::new("slow").expected(desc.clone()))
        .await
        .unwrap();
    w.write_all(&data[..SIZE / 3]).await.unwrap();
    w.flush().await.unwrap();
    // The follower has bytes before the rest of the blob is even written.
    first.await.unwrap();
    for part in data[SIZE / 3..].chunks(256 << 10) {
        w.write_all(part).await.unwrap();
        w.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    w.commit(desc.size(), Some(desc.digest())).await.unwrap();
    assert_eq!(follower.await.unwrap(), data);
}

#[tokio::test]
async fn last_byte_is_released_only_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let mut w = store
        .writer(WriterOpts::new("held").expected(desc.clone()))
        .await
        .unwrap();
    w.write_all(&data).await.unwrap();
    w.flush().await.unwrap();
    let reader = store.follow().by_ref("held", &desc);
    let mut all = vec![0u8; SIZE];
    let mut n = 0;
    while n < SIZE - 1 {
        n += reader.read_at(&mut all[n..], n as u64).await.unwrap();
    }
    assert_eq!(n, SIZE - 1, "everything but the last byte is released");
    let mut last = [0u8; 1];
    let early = tokio::time::timeout(
        Duration::from_millis(200),
        reader.read_at(&mut last, n as u64),
    )
    .await;
    assert!(early.is_err(), "the last byte waits for the commit");
    w.commit(desc.size(), Some(desc.digest())).await.unwrap();
    assert_eq!(reader.read_at(&mut last, n as u64).await.unwrap(), 1);
    all[n] = last[0];
    assert_eq!(all, data);
}

#[tokio::test]
async fn committed_blob_is_read_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    dist_content::write_blob(&store, "done", &desc, data.as_slice())
        .await
        .unwrap();
    let (out, err) = drain(&store.follow().reader(&desc)).await;
    assert!(err.is_none());
    assert_eq!(out, data);
}

#[tokio::test]
async fn aborted_ingest_fails_the_follower() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let mut w = store
        .writer(WriterOpts::new("aborted").expected(desc.clone()))
        .await
        .unwrap();
    w.write_all(&data[..SIZE / 2]).await.unwrap();
    w.flush().await.unwrap();
    let reader = store.follow().reader(&desc);
    let mut buf = vec![0u8; 16];
    assert!(reader.read_at(&mut buf, 0).await.unwrap() > 0);
    drop(w);
    store.abort("aborted").await.unwrap();
    let (out, err) = drain(&reader).await;
    let err = err.expect("the read fails");
    assert!(
        matches!(follow_error(&err), FollowError::Aborted(_)),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(out.len() <= SIZE / 2);
}

#[tokio::test]
async fn commit_that_fails_verification_fails_the_follower_before_the_last_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let mut wrong = data.clone();
    wrong[SIZE / 2] ^= 0xff;
    let mut w = store
        .writer(WriterOpts::new("wrong").expected(desc.clone()))
        .await
        .unwrap();
    let follow = store
        .follow_with(FollowOptions::default().writer_gone_after(Some(Duration::from_millis(100))));
    let reader = follow.reader(&desc);
    let reading = tokio::spawn(async move { drain(&reader).await });
    w.write_all(&wrong).await.unwrap();
    let err = w
        .commit(desc.size(), Some(desc.digest()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    let (out, err) = reading.await.unwrap();
    let err = err.expect("the read fails");
    assert!(
        matches!(follow_error(&err), FollowError::WriterGone(_)),
        "{err}"
    );
    assert!(out.len() < SIZE, "no byte past the held-back tail");
    assert!(!store.blob_path(desc.digest()).exists());
}

#[tokio::test]
async fn truncated_ingest_under_read_bytes_fails_the_follower() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let mut w = store
        .writer(WriterOpts::new("reset").expected(desc.clone()))
        .await
        .unwrap();
    w.write_all(&data[..SIZE / 2]).await.unwrap();
    w.flush().await.unwrap();
    let reader = store.follow().reader(&desc);
    let mut buf = vec![0u8; 1024];
    assert!(reader.read_at(&mut buf, 0).await.unwrap() > 0);
    w.truncate(0).await.unwrap();
    let err = reader.read_at(&mut buf, 1024).await.unwrap_err();
    assert!(
        matches!(follow_error(&err), FollowError::Restarted(_)),
        "{err}"
    );
}

#[tokio::test]
async fn closed_follow_fails_readers_of_blobs_never_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let desc = desc_of(b"never fetched");
    let follow = store.follow();
    let reader = follow.reader(&desc);
    follow.close();
    let err = reader.read_at(&mut [0u8; 4], 0).await.unwrap_err();
    assert!(
        matches!(follow_error(&err), FollowError::Closed(_)),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

/// The writing side of `follower_reads_a_download_of_another_process`: writes a third,
/// waits for the parent's `go` file, writes the rest and commits.
#[test]
fn child_writer() {
    let Ok(root) = std::env::var(CHILD_ROOT) else {
        return; // only a child spawned by the test below does anything
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = LocalStore::open(&root).unwrap();
        let data = data();
        let desc = desc_of(&data);
        let mut w = store
            .writer(WriterOpts::new("other-process").expected(desc.clone()))
            .await
            .unwrap();
        w.write_all(&data[..SIZE / 3]).await.unwrap();
        w.flush().await.unwrap();
        let go = Path::new(&root).join("go");
        // Told to hang, the child waits to be killed mid-download.
        while !go.exists() || std::env::var_os(CHILD_HANG).is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w.write_all(&data[SIZE / 3..]).await.unwrap();
        w.commit(desc.size(), Some(desc.digest())).await.unwrap();
    });
}

#[tokio::test]
async fn follower_reads_a_download_of_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let mut child = tokio::process::Command::from({
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROOT, dir.path())
            .stdout(std::process::Stdio::null());
        c
    })
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let reader = store.follow().reader(&desc);
    // A third arrives while the child waits: bytes of an unfinished download.
    let mut first = vec![0u8; SIZE / 3];
    let mut n = 0;
    while n < SIZE / 3 {
        n += reader.read_at(&mut first[n..], n as u64).await.unwrap();
    }
    assert_eq!(first, data[..SIZE / 3]);
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let (out, err) = drain(&reader).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(out, data);
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn without_a_grace_limit_a_writerless_ingest_fails_only_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let mut w = store
        .writer(WriterOpts::new("left").expected(desc.clone()))
        .await
        .unwrap();
    w.write_all(&data[..SIZE / 2]).await.unwrap();
    w.flush().await.unwrap();
    drop(w);
    let follow = store.follow_with(FollowOptions::default().writer_gone_after(None));
    let reader = follow.reader(&desc);
    let mut buf = vec![0u8; SIZE];
    let mut n = 0;
    while n < SIZE / 2 {
        n += reader.read_at(&mut buf[n..], n as u64).await.unwrap();
    }
    let waiting = tokio::time::timeout(
        Duration::from_millis(600),
        reader.read_at(&mut buf, n as u64),
    )
    .await;
    assert!(waiting.is_err(), "a resumable ingest is waited for");
    follow.close();
    let err = reader.read_at(&mut buf, n as u64).await.unwrap_err();
    assert!(
        matches!(follow_error(&err), FollowError::WriterGone(_)),
        "{err}"
    );
}

#[tokio::test]
async fn follower_fails_when_the_writing_process_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let data = data();
    let desc = desc_of(&data);
    let mut child = tokio::process::Command::from({
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROOT, dir.path())
            .env(CHILD_HANG, "1")
            .stdout(std::process::Stdio::null());
        c
    })
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let follow = store
        .follow_with(FollowOptions::default().writer_gone_after(Some(Duration::from_millis(100))));
    let reader = follow.reader(&desc);
    let mut buf = vec![0u8; SIZE];
    let mut n = 0;
    while n < SIZE / 3 {
        n += reader.read_at(&mut buf[n..], n as u64).await.unwrap();
    }
    child.kill().await.unwrap(); // SIGKILL: the kernel drops its ingest lock
    let err = reader.read_at(&mut buf, n as u64).await.unwrap_err();
    assert!(
        matches!(follow_error(&err), FollowError::WriterGone(_)),
        "{err}"
    );
    assert!(!store.blob_path(desc.digest()).exists());
}
