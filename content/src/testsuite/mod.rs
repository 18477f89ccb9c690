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

use std::fmt;
use std::future::Future;

use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};
use tokio::io::AsyncWriteExt;

use crate::{ErrorKind, Store, Writer, read_blob};

use managing::{abort_and_list_statuses, expected_existing_content, labels, walk_and_delete};
use writing::{
    Resume, commit_error_state, commit_exists, empty_blob, resume, small_blob, update_status,
    writer_commit_and_read_back,
};

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

// After the macro, so the check modules can use it.
mod managing;
mod writing;

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
    crate::sha256_of(data)
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
