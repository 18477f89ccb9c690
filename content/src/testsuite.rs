//! A conformance suite any [`Store`] can run, modelled on containerd's content test suite
//! (`core/content/testsuite`): resume variants, commit of existing content, commit error
//! states, small blobs, labels, plus walking, deleting and aborting.
//!
//! Each check gets a fresh, empty store from the caller's factory and reports a [`Failure`]
//! instead of panicking, so it runs inside any test harness:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use dist_content::{LocalStore, testsuite};
//!
//! let results = testsuite::run_all(|| async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = LocalStore::open(dir.path()).unwrap();
//!     (store, dir) // the TempDir lives as long as the check
//! })
//! .await;
//! for (name, result) in &results {
//!     assert!(result.is_ok(), "{name}: {result:?}");
//! }
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::SystemTime;

use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{ErrorKind, Filter, Info, Store, Writer, WriterOpts, copy, read_blob, write_blob};

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// The outcome of one check.
pub type CheckResult = std::result::Result<(), Failure>;

/// The names of every check, in the order [`run_all`] runs them.
pub const CHECKS: &[&str] = &[
    "writer_commit_and_read_back",
    "update_status",
    "commit_exists",
    "commit_error_state",
    "resume_truncate",
    "resume_discard",
    "resume_copy",
    "resume_write_blob",
    "small_blob",
    "empty_blob",
    "labels",
    "walk_and_delete",
    "abort_and_list_statuses",
    "expected_existing_content",
];

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($fmt)+)));
        }
    };
}

/// Turns a store error into a failure that says which step hit it.
fn at<T>(step: &str, r: crate::Result<T>) -> std::result::Result<T, Failure> {
    r.map_err(|e| Failure(format!("{step}: {e} ({:?})", e.kind())))
}

/// Expects an error of `kind` from `r`.
fn expect_kind<T>(step: &str, r: crate::Result<T>, kind: ErrorKind) -> CheckResult {
    match r {
        Ok(_) => Err(Failure(format!("{step}: succeeded, expected {kind}"))),
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(Failure(format!(
            "{step}: got {e} ({}), expected {kind}",
            e.kind()
        ))),
    }
}

/// Runs every check in [`CHECKS`], each on a fresh store from `make` (whose second value,
/// for example a temporary directory, is dropped after the check).
pub async fn run_all<S, G, F, Fut>(mut make: F) -> Vec<(&'static str, CheckResult)>
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = (S, G)>,
{
    let mut out = Vec::with_capacity(CHECKS.len());
    for name in CHECKS {
        let (store, guard) = make().await;
        let result = run_check(name, &store).await;
        drop(store);
        drop(guard);
        out.push((*name, result));
    }
    out
}

/// Runs the check called `name` against `store`, which must be empty.
pub async fn run_check<S: Store + ?Sized>(name: &str, store: &S) -> CheckResult {
    match name {
        "writer_commit_and_read_back" => writer_commit_and_read_back(store).await,
        "update_status" => update_status(store).await,
        "commit_exists" => commit_exists(store).await,
        "commit_error_state" => commit_error_state(store).await,
        "resume_truncate" => resume(store, Resume::Truncate).await,
        "resume_discard" => resume(store, Resume::Discard).await,
        "resume_copy" => resume(store, Resume::Copy).await,
        "resume_write_blob" => resume(store, Resume::WriteBlob).await,
        "small_blob" => small_blob(store).await,
        "empty_blob" => empty_blob(store).await,
        "labels" => labels(store).await,
        "walk_and_delete" => walk_and_delete(store).await,
        "abort_and_list_statuses" => abort_and_list_statuses(store).await,
        "expected_existing_content" => expected_existing_content(store).await,
        other => Err(Failure(format!("no check named {other:?}"))),
    }
}

/// Deterministic pseudo-random content: a different stream for every `seed`.
fn content(size: usize, seed: u64) -> (Vec<u8>, Digest) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let d = digest_of(&data);
    (data, d)
}

fn digest_of(data: &[u8]) -> Digest {
    crate::digest::sha256_digest(Sha256::new_with_prefix(data))
}

fn desc(data: &[u8], digest: &Digest) -> std::result::Result<Descriptor, Failure> {
    DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(digest.clone())
        .size(data.len() as u64)
        .build()
        .map_err(|e| Failure(format!("descriptor: {e}")))
}

async fn write_in_pieces(w: &mut Box<dyn Writer>, data: &[u8], piece: usize) -> CheckResult {
    for part in data.chunks(piece.max(1)) {
        w.write_all(part)
            .await
            .map_err(|e| Failure(format!("write: {e}")))?;
    }
    w.flush().await.map_err(|e| Failure(format!("flush: {e}")))
}

/// Reads the blob back through `reader_at` with random-ish offsets and whole.
async fn check_content<S: Store + ?Sized>(store: &S, data: &[u8], d: &Digest) -> CheckResult {
    let desc = desc(data, d)?;
    let whole = at(
        "read_blob",
        read_blob(store, &desc, data.len() as u64).await,
    )?;
    ensure!(whole == data, "{d}: read back different bytes");
    let ra = at("reader_at", store.reader_at(&desc).await)?;
    ensure!(
        ra.size() == data.len() as u64,
        "{d}: reader size {}",
        ra.size()
    );
    let len = data.len();
    for (off, n) in [
        (0, 7),
        (len / 3, 100),
        (len / 2, 1),
        (len.saturating_sub(5), 64),
    ] {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            let r = at(
                "read_at",
                ra.read_at(&mut buf[got..], (off + got) as u64).await,
            )?;
            if r == 0 {
                break;
            }
            got += r;
        }
        let want = &data[off.min(len)..(off + n).min(len)];
        ensure!(&buf[..got] == want, "{d}: read_at({off}, {n}) differs");
    }
    let info = at("info", store.info(d).await)?;
    ensure!(
        info.digest == *d && info.size == len as u64,
        "{d}: info {info:?}"
    );
    Ok(())
}

async fn writer_commit_and_read_back<S: Store + ?Sized>(store: &S) -> CheckResult {
    for (i, with_expected) in [false, true].into_iter().enumerate() {
        let (data, d) = content(256, 10 + i as u64);
        let mut opts = WriterOpts::new(format!("c{i}"));
        if with_expected {
            opts = opts.expected(desc(&data, &d)?);
        }
        let mut w = at("writer", store.writer(opts).await)?;
        write_in_pieces(&mut w, &data, 32).await?;
        ensure!(w.digest() == d, "writer digest {} != {d}", w.digest());
        let pre = SystemTime::now();
        at("commit", w.commit(256, None).await)?;
        let post = SystemTime::now();
        check_content(store, &data, &d).await?;
        let info = at("info", store.info(&d).await)?;
        ensure!(
            info.created_at >= pre && info.created_at <= post,
            "created_at {:?} not within the commit",
            info.created_at
        );
    }
    Ok(())
}

async fn update_status<S: Store + ?Sized>(store: &S) -> CheckResult {
    let (data, d) = content(256, 20);
    let pre = SystemTime::now();
    let mut w = at(
        "writer",
        store
            .writer(WriterOpts::new("c1").expected(desc(&data, &d)?))
            .await,
    )?;
    let post = SystemTime::now();
    for (from, to) in [(0, 0), (0, 64), (64, 192), (192, 256)] {
        write_in_pieces(&mut w, &data[from..to], 64).await?;
        let st = at("status", w.status().await)?;
        ensure!(st.reference == "c1", "status ref {:?}", st.reference);
        ensure!(
            st.offset == to as u64,
            "writer offset {} != {to}",
            st.offset
        );
        ensure!(st.total == Some(256), "total {:?}", st.total);
        ensure!(
            st.expected.as_ref() == Some(&d),
            "expected {:?}",
            st.expected
        );
        ensure!(
            st.started_at >= pre && st.started_at <= post,
            "started_at outside writer creation"
        );
        ensure!(
            w.digest() == digest_of(&data[..to]),
            "digest after {to} bytes"
        );
        let stored = at("store status", store.status("c1").await)?;
        ensure!(
            stored.offset == to as u64,
            "stored offset {} != {to}",
            stored.offset
        );
    }
    at("commit", w.commit(256, Some(&d)).await)?;
    expect_kind(
        "status after commit",
        store.status("c1").await,
        ErrorKind::NotFound,
    )
}

async fn commit_exists<S: Store + ?Sized>(store: &S) -> CheckResult {
    let (data, d) = content(256, 30);
    at(
        "write_blob",
        write_blob(store, "c1", &desc(&data, &d)?, &data[..]).await,
    )?;
    for (i, expected) in [Some(&d), None].into_iter().enumerate() {
        let mut w = at(
            "writer",
            store.writer(WriterOpts::new(format!("exists-{i}"))).await,
        )?;
        write_in_pieces(&mut w, &data, 1000).await?;
        expect_kind(
            "commit of existing content",
            w.commit(256, expected).await,
            ErrorKind::AlreadyExists,
        )?;
    }
    check_content(store, &data, &d).await
}

async fn expect_locked<S: Store + ?Sized>(store: &S, reference: &str) -> CheckResult {
    expect_kind(
        "second writer on a held ref",
        store.writer(WriterOpts::new(reference)).await,
        ErrorKind::Unavailable,
    )
}

async fn commit_error_state<S: Store + ?Sized>(store: &S) -> CheckResult {
    let (c1, d1) = content(256, 40);
    let (_, d2) = content(256, 41);
    at(
        "write_blob",
        write_blob(store, "c1", &desc(&c1, &d1)?, &c1[..]).await,
    )?;
    let r = "c1-commit-error-state";

    let mut w = at("writer", store.writer(WriterOpts::new(r)).await)?;
    write_in_pieces(&mut w, &c1, 100).await?;
    expect_locked(store, r).await?;
    expect_kind(
        "commit existing",
        w.commit(256, Some(&d1)).await,
        ErrorKind::AlreadyExists,
    )?;

    let mut longer = c1.clone();
    longer.extend_from_slice(b"more");
    let d_longer = digest_of(&longer);
    let mut w = at("writer", store.writer(WriterOpts::new(r)).await)?;
    ensure!(w.offset() == 0, "AlreadyExists must leave no ingest behind");
    write_in_pieces(&mut w, &longer, 100).await?;
    expect_kind(
        "wrong digest",
        w.commit(260, Some(&d2)).await,
        ErrorKind::FailedPrecondition,
    )?;
    expect_kind(
        "blob after wrong digest",
        store.info(&d2).await,
        ErrorKind::NotFound,
    )?;
    expect_kind(
        "blob after wrong digest",
        store.info(&d_longer).await,
        ErrorKind::NotFound,
    )?;

    // The ingest stays, whole and resumable.
    let w = at("writer", store.writer(WriterOpts::new(r)).await)?;
    ensure!(
        w.offset() == 260,
        "resumed at {} after a failed commit",
        w.offset()
    );
    expect_locked(store, r).await?;
    expect_kind(
        "wrong size",
        w.commit(256, None).await,
        ErrorKind::FailedPrecondition,
    )?;
    expect_kind(
        "blob after wrong size",
        store.info(&d_longer).await,
        ErrorKind::NotFound,
    )?;

    let w = at("writer", store.writer(WriterOpts::new(r)).await)?;
    at("commit after failures", w.commit(260, None).await)?;
    check_content(store, &longer, &d_longer).await?;

    let mut w = at("writer", store.writer(WriterOpts::new(r)).await)?;
    ensure!(w.offset() == 0, "a committed ref starts empty");
    write_in_pieces(&mut w, &c1, 100).await?;
    expect_locked(store, r).await?;
    expect_kind(
        "commit existing",
        w.commit(256, Some(&d1)).await,
        ErrorKind::AlreadyExists,
    )?;
    let w = at("writer", store.writer(WriterOpts::new(r)).await)?;
    drop(w);
    drop(at(
        "writer after drop",
        store.writer(WriterOpts::new(r)).await,
    )?);
    Ok(())
}

#[derive(Clone, Copy)]
enum Resume {
    Truncate,
    Discard,
    Copy,
    WriteBlob,
}

async fn resume<S: Store + ?Sized>(store: &S, how: Resume) -> CheckResult {
    let mut seed = 100;
    for size in [500usize, 5000, 50000] {
        for fraction in [0.0, 0.1, 0.5, 0.9, 1.0] {
            seed += 1;
            let (data, d) = content(size, seed);
            let desc = desc(&data, &d)?;
            let limit = (size as f64 * fraction) as usize;
            let r = format!("ref-{size}-{limit}");
            let mut w = at(
                "writer",
                store
                    .writer(WriterOpts::new(&r).expected(desc.clone()))
                    .await,
            )?;
            write_in_pieces(&mut w, &data[..limit], 999).await?;
            drop(w);
            let step = format!("resume {r}");
            if let Resume::WriteBlob = how {
                at(&step, write_blob(store, &r, &desc, &data[..]).await)?;
            } else {
                let mut w = at(
                    "writer",
                    store
                        .writer(WriterOpts::new(&r).expected(desc.clone()))
                        .await,
                )?;
                let st = at("status", w.status().await)?;
                ensure!(
                    st.offset == limit as u64,
                    "{step}: offset {} != {limit}",
                    st.offset
                );
                ensure!(
                    w.digest() == digest_of(&data[..limit]),
                    "{step}: resumed digest"
                );
                match how {
                    Resume::Truncate => {
                        at(&step, w.truncate(0).await)?;
                        ensure!(w.offset() == 0, "{step}: offset after truncate");
                        write_in_pieces(&mut w, &data, 1024).await?;
                        at(&step, w.commit(size as u64, Some(&d)).await)?;
                    }
                    Resume::Discard => {
                        write_in_pieces(&mut w, &data[limit..], 1024).await?;
                        at(&step, w.commit(size as u64, Some(&d)).await)?;
                    }
                    Resume::Copy | Resume::WriteBlob => {
                        at(&step, copy(w, &data[limit..], size as u64, &d).await)?;
                    }
                }
            }
            check_content(store, &data, &d).await?;
        }
    }
    Ok(())
}

async fn small_blob<S: Store + ?Sized>(store: &S) -> CheckResult {
    let data = b"foobar";
    let d = digest_of(data);
    let desc = desc(data, &d)?;
    let mut w = at(
        "writer",
        store
            .writer(WriterOpts::new("small").expected(desc.clone()))
            .await,
    )?;
    write_in_pieces(&mut w, data, 6).await?;
    at("commit", w.commit(6, Some(&d)).await)?;
    let ra = at("reader_at", store.reader_at(&desc).await)?;
    let mut buf = [0u8; 7];
    let n = at("read_at", ra.read_at(&mut buf, 0).await)?;
    ensure!(&buf[..n] == data, "read {n} bytes: {:?}", &buf[..n]);
    let n = at("read_at end", ra.read_at(&mut buf, 6).await)?;
    ensure!(n == 0, "read_at at the end returned {n}");
    Ok(())
}

async fn empty_blob<S: Store + ?Sized>(store: &S) -> CheckResult {
    let w = at("writer", store.writer(WriterOpts::new("empty")).await)?;
    let d = w.digest();
    ensure!(d == digest_of(b""), "empty digest {d}");
    at("commit", w.commit(0, Some(&d)).await)?;
    check_content(store, b"", &d).await
}

fn label_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn walk_all<S: Store + ?Sized>(
    store: &S,
    filter: &Filter,
) -> std::result::Result<Vec<Info>, Failure> {
    let mut seen = Vec::new();
    at(
        "walk",
        store
            .walk(filter, &mut |info| {
                seen.push(info);
                Ok(())
            })
            .await,
    )?;
    seen.sort_by(|a, b| a.digest.as_ref().cmp(b.digest.as_ref()));
    Ok(seen)
}

async fn labels<S: Store + ?Sized>(store: &S) -> CheckResult {
    let (c1, d1) = content(256, 50);
    let (c2, d2) = content(256, 51);
    at(
        "write_blob",
        write_blob(store, "l1", &desc(&c1, &d1)?, &c1[..]).await,
    )?;
    at(
        "write_blob",
        write_blob(store, "l2", &desc(&c2, &d2)?, &c2[..]).await,
    )?;
    let info = at("info", store.info(&d1).await)?;
    ensure!(
        info.labels.is_empty(),
        "new blob has labels {:?}",
        info.labels
    );

    let first = label_map(&[("k1", "v1"), ("k2", "v2"), ("containerd.io/gc.root", "now")]);
    let info = at(
        "update_labels",
        store.update_labels(&d1, first.clone()).await,
    )?;
    ensure!(
        info.labels == first,
        "labels after update {:?}",
        info.labels
    );
    ensure!(
        at("info", store.info(&d1).await)?.labels == first,
        "labels not stored"
    );

    let second = label_map(&[("k1", "newvalue"), ("k3", "v3")]);
    at(
        "update_labels",
        store.update_labels(&d1, second.clone()).await,
    )?;
    let info = at("info", store.info(&d1).await)?;
    ensure!(info.labels == second, "labels replaced: {:?}", info.labels);
    ensure!(
        info.updated_at >= info.created_at,
        "updated_at before created_at"
    );

    let mut by_key = Filter::all();
    by_key.labels = vec![("k3".into(), None)];
    let found = walk_all(store, &by_key).await?;
    ensure!(
        found.len() == 1 && found[0].digest == d1,
        "walk by label key: {found:?}"
    );
    let mut by_value = Filter::all();
    by_value.labels = vec![("k1".into(), Some("v1".into()))];
    ensure!(
        walk_all(store, &by_value).await?.is_empty(),
        "walk by stale label value"
    );
    ensure!(
        walk_all(store, &Filter::all()).await?.len() == 2,
        "walk all"
    );

    let (_, absent) = content(1, 52);
    expect_kind(
        "labels on a missing blob",
        store.update_labels(&absent, first).await,
        ErrorKind::NotFound,
    )
}

async fn walk_and_delete<S: Store + ?Sized>(store: &S) -> CheckResult {
    let mut blobs = Vec::new();
    for i in 0..3 {
        let (data, d) = content(100 + i, 60 + i as u64);
        at(
            "write_blob",
            write_blob(store, &format!("w{i}"), &desc(&data, &d)?, &data[..]).await,
        )?;
        blobs.push((data, d));
    }
    let all = walk_all(store, &Filter::all()).await?;
    ensure!(all.len() == 3, "walk found {} blobs", all.len());
    let (data, d) = &blobs[1];
    at("delete", store.delete(d).await)?;
    expect_kind(
        "info after delete",
        store.info(d).await,
        ErrorKind::NotFound,
    )?;
    expect_kind(
        "read after delete",
        store.reader_at(&desc(data, d)?).await,
        ErrorKind::NotFound,
    )?;
    expect_kind("second delete", store.delete(d).await, ErrorKind::NotFound)?;
    let left = walk_all(store, &Filter::all()).await?;
    ensure!(
        left.len() == 2 && left.iter().all(|i| i.digest != *d),
        "walk after delete"
    );
    check_content(store, &blobs[0].0, &blobs[0].1).await
}

async fn abort_and_list_statuses<S: Store + ?Sized>(store: &S) -> CheckResult {
    for r in ["pull/a", "pull/b", "push/c"] {
        let mut w = at("writer", store.writer(WriterOpts::new(r)).await)?;
        write_in_pieces(&mut w, r.as_bytes(), 100).await?;
    }
    let mut pull = Filter::all();
    pull.ref_prefix = Some("pull/".into());
    let mut refs: Vec<String> = at("list", store.list_statuses(&pull).await)?
        .into_iter()
        .map(|s| s.reference)
        .collect();
    refs.sort();
    ensure!(refs == ["pull/a", "pull/b"], "list by prefix: {refs:?}");
    let st = at("status", store.status("pull/a").await)?;
    ensure!(st.offset == 6, "status offset {}", st.offset);
    at("abort", store.abort("pull/a").await)?;
    expect_kind(
        "status after abort",
        store.status("pull/a").await,
        ErrorKind::NotFound,
    )?;
    expect_kind(
        "second abort",
        store.abort("pull/a").await,
        ErrorKind::NotFound,
    )?;
    let all = at("list", store.list_statuses(&Filter::all()).await)?;
    ensure!(all.len() == 2, "list after abort: {all:?}");
    let w = at(
        "writer after abort",
        store.writer(WriterOpts::new("pull/a")).await,
    )?;
    ensure!(w.offset() == 0, "aborted ingest left data");
    Ok(())
}

async fn expected_existing_content<S: Store + ?Sized>(store: &S) -> CheckResult {
    let (data, d) = content(300, 70);
    let desc = desc(&data, &d)?;
    at(
        "write_blob",
        write_blob(store, "x1", &desc, &data[..]).await,
    )?;
    expect_kind(
        "writer for committed content",
        store
            .writer(WriterOpts::new("x2").expected(desc.clone()))
            .await,
        ErrorKind::AlreadyExists,
    )?;
    at(
        "write_blob of existing content",
        write_blob(store, "x3", &desc, &data[..]).await,
    )?;
    check_content(store, &data, &d).await
}
