//! The writer never blocks its caller's thread on its own threads: with a hashing thread
//! that does not answer, `digest()` stays pending and dropping the writer returns at once;
//! once hashing resumes, the digest is right and every byte reaches `data`.

use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use futures::FutureExt;
use tokio::io::AsyncWriteExt;

use super::{HashMsg, HashThread, LocalWriter};
use crate::local::LocalStore;
use crate::local::lock::IngestLock;
use crate::{ErrorKind, IngestManager, Ingester, Writer, WriterOpts};

/// A hang, not a slow machine: these bodies take milliseconds when nothing blocks.
const HANG: Duration = Duration::from_secs(60);

fn digest_of(data: &[u8]) -> oci_spec::image::Digest {
    crate::sha256_of(data)
}

/// A writer on `reference` whose hashing thread answers nothing until the returned
/// receiver is served with [`HashThread::run`].
fn stalled_writer(store: &LocalStore, reference: &str) -> (LocalWriter, Receiver<HashMsg>) {
    let mut w = store.open_writer(WriterOpts::new(reference)).unwrap();
    let (tx, rx) = channel();
    w.hash = HashThread(tx); // the real hashing thread ends with its sender
    (w, rx)
}

/// Runs `body` on a thread of its own with a current-thread runtime, and fails if it has
/// not finished within [`HANG`] (a blocked runtime thread would never finish).
fn without_blocking(body: impl FnOnce(&tokio::runtime::Runtime) + Send + 'static) {
    let (done, finished) = channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        body(&rt);
        let _ = done.send(());
    });
    if finished.recv_timeout(HANG).is_err() {
        panic!("the writer blocked its caller's thread (or the body panicked)");
    }
}

#[test]
fn digest_waits_for_the_hashing_thread_without_blocking_the_caller() {
    without_blocking(|rt| {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let (mut w, rx) = stalled_writer(&store, "d");
        rt.block_on(w.write_all(&data)).unwrap();
        let mut digest = w.digest();
        // Two chunks wait for hashing: the digest is not ready, and asking did not block.
        assert!((&mut digest).now_or_never().is_none());
        std::thread::spawn(move || HashThread::run(crate::Digester::sha256(), &rx));
        assert_eq!(rt.block_on(digest).unwrap(), digest_of(&data));
    });
}

#[test]
fn dropping_a_writer_returns_at_once_and_its_thread_stores_the_rest_before_unlocking() {
    without_blocking(|rt| {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path()).unwrap();
        let data: Vec<u8> = (0..(3u32 << 20) + 100).map(|i| (i % 253) as u8).collect();
        let (mut w, rx) = stalled_writer(&store, "r");
        rt.block_on(w.write_all(&data)).unwrap(); // three chunks queued, 100 bytes buffered
        let dir = w.dir.clone();
        drop(w); // must not wait for the stalled hashing

        // The lock is still held: the writing thread has not stored everything yet.
        let busy = IngestLock::acquire(&dir, "r").unwrap_err();
        assert_eq!(busy.kind(), ErrorKind::Unavailable);

        std::thread::spawn(move || HashThread::run(crate::Digester::sha256(), &rx));
        // A status from this process waits for the close; then every byte is stored.
        let status = rt.block_on(store.status("r")).unwrap();
        assert_eq!(status.offset, data.len() as u64);
        let w = rt.block_on(store.writer(WriterOpts::new("r"))).unwrap();
        assert_eq!(w.offset(), data.len() as u64);
        assert_eq!(rt.block_on(w.digest()).unwrap(), digest_of(&data));
    });
}
