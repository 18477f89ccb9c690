//! Behaviour specific to the local store: the on-disk layout, locking, resume from disk,
//! stale-ingest pruning. Behaviour any store must have is in [`crate::testsuite`].

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};
use tokio::io::AsyncWriteExt;

use super::*;
use crate::{ErrorKind, Manager, Provider, read_blob};

fn digest_of(data: &[u8]) -> Digest {
    crate::sha256_of(data)
}

fn desc_of(data: &[u8]) -> Descriptor {
    DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(digest_of(data))
        .size(data.len() as u64)
        .build()
        .unwrap()
}

fn store() -> (tempfile::TempDir, LocalStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path().join("content")).unwrap();
    (tmp, store)
}

#[tokio::test]
async fn committed_blob_lands_in_containerd_layout_read_only() {
    let (_tmp, store) = store();
    let data = b"hello layout";
    let mut w = store.writer(WriterOpts::new("r1")).await.unwrap();
    w.write_all(data).await.unwrap();
    let ingest_dir = store.root().join("ingest").join(ingest::dir_name("r1"));
    for f in ["ref", "startedat", "updatedat", "data"] {
        assert!(ingest_dir.join(f).exists(), "missing ingest file {f}");
    }
    assert_eq!(
        std::fs::read_to_string(ingest_dir.join("ref")).unwrap(),
        "r1"
    );
    w.commit(data.len() as u64, Some(&digest_of(data)))
        .await
        .unwrap();
    let blob = store
        .root()
        .join("blobs/sha256")
        .join(digest_of(data).digest());
    assert_eq!(std::fs::read(&blob).unwrap(), data);
    let mode = std::fs::metadata(&blob).unwrap().permissions().mode();
    assert_eq!(mode & 0o222, 0, "blob must be read-only, mode {mode:o}");
    assert!(!ingest_dir.exists(), "ingest dir is removed on commit");
}

#[tokio::test]
async fn large_blob_streams_through_several_chunks() {
    let (_tmp, store) = store();
    let data: Vec<u8> = (0..(3 * (1 << 20) + 12345))
        .map(|i| (i % 251) as u8)
        .collect();
    let mut w = store.writer(WriterOpts::new("big")).await.unwrap();
    for part in data.chunks(7919) {
        w.write_all(part).await.unwrap();
    }
    assert_eq!(w.digest().await.unwrap(), digest_of(&data));
    w.commit(data.len() as u64, Some(&digest_of(&data)))
        .await
        .unwrap();
    let back = read_blob(&store, &desc_of(&data), u64::MAX).await.unwrap();
    assert!(back == data);
}

#[tokio::test]
async fn second_writer_on_a_locked_ref_is_unavailable_at_once() {
    let (_tmp, store) = store();
    let _first = store.writer(WriterOpts::new("busy")).await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        store.writer(WriterOpts::new("busy")),
    )
    .await
    .expect("second writer must not wait")
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let err = store.abort("busy").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[tokio::test]
async fn dropped_writer_keeps_buffered_bytes_and_releases_the_ref() {
    let (_tmp, store) = store();
    let mut w = store.writer(WriterOpts::new("r")).await.unwrap();
    w.write_all(b"partial ").await.unwrap(); // buffered, never flushed
    drop(w);
    let mut w = store.writer(WriterOpts::new("r")).await.unwrap();
    assert_eq!(w.offset(), 8);
    assert_eq!(w.digest().await.unwrap(), digest_of(b"partial "));
    w.write_all(b"content").await.unwrap();
    w.commit(15, Some(&digest_of(b"partial content")))
        .await
        .unwrap();
}

#[tokio::test]
async fn resume_discards_data_longer_than_the_expected_size() {
    let (_tmp, store) = store();
    let data = b"0123456789";
    let mut w = store.writer(WriterOpts::new("r")).await.unwrap();
    w.write_all(b"way too much stale data").await.unwrap();
    drop(w);
    let w = store
        .writer(WriterOpts::new("r").expected(desc_of(data)))
        .await
        .unwrap();
    assert_eq!(
        w.offset(),
        0,
        "stale bytes past the expected size are dropped"
    );
    let path = store
        .root()
        .join("ingest")
        .join(ingest::dir_name("r"))
        .join("data");
    assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
}

#[tokio::test]
async fn resume_with_a_different_expected_digest_starts_over() {
    let (_tmp, store) = store();
    let mut w = store
        .writer(WriterOpts::new("r").expected(desc_of(b"aaaa")))
        .await
        .unwrap();
    w.write_all(b"aa").await.unwrap();
    drop(w);
    let w = store
        .writer(WriterOpts::new("r").expected(desc_of(b"bbbb")))
        .await
        .unwrap();
    assert_eq!(w.offset(), 0);
    assert_eq!(w.status().await.unwrap().expected, Some(digest_of(b"bbbb")));
}

#[tokio::test]
async fn resume_rehashes_the_data_file_rather_than_trusting_memory() {
    let (_tmp, store) = store();
    let mut w = store.writer(WriterOpts::new("r")).await.unwrap();
    w.write_all(b"abc").await.unwrap();
    drop(w);
    // The drop finishes on the writer's thread; status waits for it.
    store.status("r").await.unwrap();
    // A torn tail: only what is in `data` counts.
    let path = store
        .root()
        .join("ingest")
        .join(ingest::dir_name("r"))
        .join("data");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(2)
        .unwrap();
    let w = store.writer(WriterOpts::new("r")).await.unwrap();
    assert_eq!(w.offset(), 2);
    assert_eq!(w.digest().await.unwrap(), digest_of(b"ab"));
}

#[tokio::test]
async fn stale_ingests_are_listed_and_pruned_but_live_ones_kept() {
    let (_tmp, store) = store();
    for r in ["old-1", "old-2", "held"] {
        let mut w = store.writer(WriterOpts::new(r)).await.unwrap();
        w.write_all(b"x").await.unwrap();
        drop(w);
    }
    let held = store.writer(WriterOpts::new("held")).await.unwrap();
    // The drops finish on the writers' threads; listing waits for them.
    store.list_statuses(&Filter::all()).await.unwrap();
    // Age them: every timestamp the status is derived from goes back an hour.
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for r in ["old-1", "old-2", "held"] {
        let dir = store.root().join("ingest").join(ingest::dir_name(r));
        ingest::touch_updated(&dir, hour_ago).unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join("data"))
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    let mut w = store.writer(WriterOpts::new("fresh")).await.unwrap();
    w.write_all(b"y").await.unwrap();
    drop(w);
    // A directory a writer left before recording its ref, an hour ago.
    let orphan = store.root().join("ingest").join("orphan");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::File::open(&orphan)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();

    let stale: Vec<String> = store
        .stale_ingests(Duration::from_secs(600))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.reference)
        .collect();
    assert_eq!(stale, ["held", "old-1", "old-2"]);
    let removed: Vec<String> = store
        .prune_stale_ingests(Duration::from_secs(600))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.reference)
        .collect();
    assert_eq!(removed, ["old-1", "old-2"], "a held ingest is never pruned");
    let left: Vec<String> = store
        .list_statuses(&Filter::all())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.reference)
        .collect();
    assert_eq!(left, ["fresh", "held"]);
    assert!(
        !orphan.exists(),
        "an old directory without a ref is removed"
    );
    drop(held);
}

#[tokio::test]
async fn reader_at_reports_not_found_for_absent_blobs() {
    let (_tmp, store) = store();
    let err = store.reader_at(&desc_of(b"nope")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn truncate_to_a_prefix_rehashes_and_continues() {
    let (_tmp, store) = store();
    let mut w = store.writer(WriterOpts::new("t")).await.unwrap();
    w.write_all(b"keep this, drop that").await.unwrap();
    w.truncate(10).await.unwrap();
    assert_eq!(w.offset(), 10);
    assert_eq!(w.digest().await.unwrap(), digest_of(b"keep this,"));
    w.write_all(b" and this").await.unwrap();
    let err = w.truncate(1000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let want = b"keep this, and this";
    w.commit(want.len() as u64, Some(&digest_of(want)))
        .await
        .unwrap();
    assert_eq!(
        read_blob(&store, &desc_of(want), 100).await.unwrap(),
        want.to_vec()
    );
}

#[tokio::test]
async fn a_failed_write_poisons_the_writer_until_truncate() {
    let (_tmp, store) = store();
    let mut w = store.open_writer(WriterOpts::new("p")).unwrap();
    // Swap the data file's descriptor for a read-only one, as if the disk had failed.
    let path = store
        .root()
        .join("ingest")
        .join(ingest::dir_name("p"))
        .join("data");
    w.file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
    let chunk = vec![7u8; 1 << 20];
    let mut failed = false;
    for _ in 0..3 {
        if w.write_all(&chunk).await.is_err() || w.flush().await.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "writes to a read-only descriptor must fail");
    assert!(
        w.write_all(b"more").await.is_err(),
        "poisoned writer accepts no data"
    );
    assert!(w.flush().await.is_err(), "poisoned writer cannot flush");
    // The disk is back: truncate re-reads what is really stored and clears the poison.
    w.file = std::sync::Arc::new(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap(),
    );
    w.truncate(0).await.unwrap();
    w.write_all(b"recovered").await.unwrap();
    Box::new(w)
        .commit(9, Some(&digest_of(b"recovered")))
        .await
        .unwrap();
}

#[tokio::test]
async fn writer_refuses_an_expected_digest_it_cannot_compute() {
    let (_tmp, store) = store();
    let blake3: Digest = format!("blake3:{}", "ab".repeat(32)).parse().unwrap();
    let desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(blake3)
        .size(1u64)
        .build()
        .unwrap();
    let err = store
        .writer(WriterOpts::new("r").expected(desc))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn chunks_queued_after_a_failed_one_are_never_written() {
    let (_tmp, store) = store();
    let mut w = store.open_writer(WriterOpts::new("q")).unwrap();
    let path = store
        .root()
        .join("ingest")
        .join(ingest::dir_name("q"))
        .join("data");
    let rw = std::sync::Arc::clone(&w.file);
    let ro = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
    let mib = 1 << 20;
    // Each chunk is handed to its write task (with the descriptor current at that moment)
    // when the next one arrives: A gets a good descriptor, B a failing one, C and D good.
    w.write_all(&vec![b'A'; mib]).await.unwrap();
    let mut results = Vec::new();
    for (fill, file) in [(b'B', &rw), (b'C', &ro), (b'D', &rw)] {
        w.file = std::sync::Arc::clone(file);
        results.push(w.write_all(&vec![fill; mib]).await.is_ok());
    }
    w.file = rw;
    results.push(w.flush().await.is_ok());
    assert!(results.contains(&false), "the failed chunk must surface");
    drop(w);
    store.status("q").await.unwrap(); // waits for the drop to finish
    let data = std::fs::read(&path).unwrap();
    assert_eq!(
        data.len(),
        mib,
        "only the prefix before the failure is stored"
    );
    assert!(data.iter().all(|b| *b == b'A'));
}

#[tokio::test]
async fn concurrent_label_updates_of_one_blob_never_collide_and_leave_no_temp_files() {
    let (_tmp, store) = store();
    let data = b"labelled";
    let d = digest_of(data);
    crate::write_blob(&store, "l", &desc_of(data), &data[..])
        .await
        .unwrap();
    let sets: Vec<std::collections::HashMap<String, String>> = (0..32)
        .map(|i| {
            (0..=i % 5)
                .map(|k| (format!("k{k}"), format!("update-{i}")))
                .collect()
        })
        .collect();
    let updates = sets.iter().map(|labels| {
        let (store, d, labels) = (store.clone(), d.clone(), labels.clone());
        tokio::spawn(async move { store.update_labels(&d, labels).await })
    });
    for done in futures::future::join_all(updates).await {
        done.unwrap().unwrap();
    }
    let now = store.info(&d).await.unwrap().labels;
    assert!(sets.contains(&now), "labels are a mix of updates: {now:?}");
    let labels_dir = store.root().join("labels").join("sha256");
    let files: Vec<String> = std::fs::read_dir(&labels_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, [d.digest().to_owned()]);
}

#[tokio::test]
async fn ingest_metadata_is_replaced_whole_and_leaves_no_temp_files() {
    let (_tmp, store) = store();
    let desc = desc_of(b"some content");
    let w = store
        .writer(WriterOpts::new("m").expected(desc.clone()))
        .await
        .unwrap();
    drop(w);
    // A resume that changes the expectation rewrites every metadata file.
    let other = desc_of(b"other content!");
    let w = store
        .writer(WriterOpts::new("m").expected(other.clone()))
        .await
        .unwrap();
    drop(w);
    let status = store.status("m").await.unwrap();
    assert_eq!(status.expected.as_ref(), Some(other.digest()));
    assert_eq!(status.total, Some(other.size()));
    let dir = store.root().join("ingest").join(ingest::dir_name("m"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let want = [
        "data",
        "expected",
        "lock",
        "ref",
        "startedat",
        "total",
        "updatedat",
    ];
    assert_eq!(files, want);
}

#[tokio::test]
async fn walk_skips_a_blob_with_corrupt_labels_and_lists_the_rest() {
    let (_tmp, store) = store();
    for data in [&b"first"[..], b"second"] {
        crate::write_blob(&store, "w", &desc_of(data), data)
            .await
            .unwrap();
    }
    let bad = digest_of(b"first");
    let labels = HashMap::from([("k".to_owned(), "v".to_owned())]);
    store.update_labels(&bad, labels).await.unwrap();
    std::fs::write(store.labels_path(&bad), b"{ torn").unwrap();
    let mut seen = Vec::new();
    store
        .walk(&Filter::all(), &mut |info| {
            seen.push(info.digest);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(seen, [digest_of(b"second")]);
    let err = store.info(&bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
}

#[tokio::test]
async fn an_ingest_left_half_removed_is_not_listed_and_prune_deletes_it() {
    let (_tmp, store) = store();
    // What a crash in the middle of removing a committed ingest leaves behind.
    let left = store.root().join("ingest").join(".removing-1-1");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("ref"), "gone").unwrap();
    assert!(
        store
            .list_statuses(&Filter::all())
            .await
            .unwrap()
            .is_empty()
    );
    store
        .prune_stale_ingests(Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(!left.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_add_labels_of_different_keys_all_survive() {
    use crate::Manager;
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path()).unwrap();
    let digest = crate::sha256_of(b"labelled");
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageManifest,
        8,
        digest.clone(),
    );
    crate::write_blob(&store, "l", &desc, &b"labelled"[..])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, digest) = (store.clone(), digest.clone());
            tokio::spawn(async move {
                let label = std::collections::HashMap::from([(format!("k{i}"), format!("v{i}"))]);
                store.add_labels(&digest, label).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let labels = store.info(&digest).await.unwrap().labels;
    assert_eq!(labels.len(), 32, "{labels:?}");
}

#[tokio::test]
async fn blocking_reads_return_what_async_reads_return() {
    let (_tmp, store) = store();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let desc = desc_of(&data);
    crate::write_blob(&store, "b", &desc, &data[..])
        .await
        .unwrap();
    let reader = store.reader_at(&desc).await.unwrap();
    for (offset, len) in [(0u64, 4096usize), (9_000, 4096), (10_000, 16), (20_000, 16)] {
        let mut a = vec![0u8; len];
        let mut b = vec![0u8; len];
        let na = reader.read_at(&mut a, offset).await.unwrap();
        let nb = reader.read_at_blocking(&mut b, offset).unwrap().unwrap();
        assert_eq!((na, &a[..na]), (nb, &b[..nb]), "at {offset}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_merges_of_one_label_all_survive() {
    use crate::Manager;
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path()).unwrap();
    let digest = crate::sha256_of(b"merged");
    let desc =
        oci_spec::image::Descriptor::new(oci_spec::image::MediaType::ImageLayer, 6, digest.clone());
    crate::write_blob(&store, "m", &desc, &b"merged"[..])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, digest) = (store.clone(), digest.clone());
            tokio::spawn(async move {
                let merge: crate::LabelMerge = std::sync::Arc::new(move |current| {
                    let part = format!("r{i}");
                    Some(match current {
                        Some(c) => format!("{c},{part}"),
                        None => part,
                    })
                });
                store.merge_label(&digest, "list", merge).await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let labels = store.info(&digest).await.unwrap().labels;
    assert_eq!(labels["list"].split(',').count(), 32, "{labels:?}");
    // `None` leaves the blob as it is.
    let keep: crate::LabelMerge = std::sync::Arc::new(|_| None);
    let info = store.merge_label(&digest, "list", keep).await.unwrap();
    assert_eq!(info.labels, labels);
}
