//! sha256, sha384 and sha512 blobs through `LocalStore`: written, verified, committed under
//! `blobs/<alg>/<hex>`, read back, listed, resumed and followed; anything else is refused
//! with `InvalidArgument`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dist_content::{
    Algorithm, ErrorKind, Filter, Ingester, LocalStore, Manager, Provider, ReaderAtReader,
    WriterOpts, digest_of, read_blob, write_blob,
};
use oci_spec::image::{Descriptor, Digest, MediaType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn desc(data: &[u8], alg: Algorithm) -> Descriptor {
    Descriptor::new(
        MediaType::ImageLayer,
        data.len() as u64,
        digest_of(alg, data),
    )
}

fn store() -> (tempfile::TempDir, LocalStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::open(tmp.path().join("content")).unwrap();
    (tmp, store)
}

/// Enough bytes to span several of the writer's 1 MiB chunks.
fn data(seed: u8) -> Vec<u8> {
    (0..(2 * (1 << 20) + 777))
        .map(|i: u32| (i % 251) as u8 ^ seed)
        .collect()
}

#[tokio::test]
async fn every_algorithm_is_written_committed_and_read_under_its_own_name() {
    let (_tmp, store) = store();
    let mut names = Vec::new();
    for (i, alg) in Algorithm::ALL.into_iter().enumerate() {
        let data = data(i as u8);
        let desc = desc(&data, alg);
        let opts = WriterOpts::new(format!("layer-{alg}")).expected(desc.clone());
        let mut w = store.writer(opts).await.unwrap();
        w.write_all(&data).await.unwrap();
        assert_eq!(w.digest().await.unwrap(), *desc.digest(), "{alg}");
        w.commit(desc.size(), Some(desc.digest())).await.unwrap();

        let path = store.blob_path(desc.digest());
        assert!(
            path.ends_with(format!("blobs/{alg}/{}", desc.digest().digest())),
            "{}",
            path.display()
        );
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert!(read_blob(&store, &desc, u64::MAX).await.unwrap() == data);
        assert_eq!(store.info(desc.digest()).await.unwrap().size, desc.size());
        names.push(desc.digest().clone());
    }
    let mut listed = Vec::new();
    store
        .walk(&Filter::all(), &mut |info| {
            listed.push(info.digest);
            Ok(())
        })
        .await
        .unwrap();
    names.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    assert_eq!(listed, names, "walk lists every algorithm's blobs");
}

#[tokio::test]
async fn a_sha512_writer_refuses_content_of_another_digest() {
    let (_tmp, store) = store();
    let desc = desc(b"the real layer", Algorithm::Sha512);
    let mut w = store
        .writer(WriterOpts::new("bad").expected(desc.clone()))
        .await
        .unwrap();
    w.write_all(b"a fake  layer!").await.unwrap();
    let err = w.commit(desc.size(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    assert!(err.to_string().contains("sha512:"), "{err}");
    let missing = store.info(desc.digest()).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_commit_may_name_the_blob_by_another_algorithm_than_the_writer_hashed() {
    let (_tmp, store) = store();
    let data = data(7);
    // No expected digest when opened: the writer hashes sha256 as it goes.
    let mut w = store.writer(WriterOpts::new("late")).await.unwrap();
    w.write_all(&data).await.unwrap();
    assert_eq!(
        w.digest().await.unwrap(),
        digest_of(Algorithm::Sha256, &data)
    );
    let named = digest_of(Algorithm::Sha384, &data);
    w.commit(data.len() as u64, Some(&named)).await.unwrap();
    let back = read_blob(&store, &desc(&data, Algorithm::Sha384), u64::MAX)
        .await
        .unwrap();
    assert!(back == data);

    // And the re-hash still catches wrong content.
    let mut w = store.writer(WriterOpts::new("late-bad")).await.unwrap();
    w.write_all(&data[1..]).await.unwrap();
    let wrong = digest_of(Algorithm::Sha512, &data);
    let err = w
        .commit(data.len() as u64 - 1, Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}

#[tokio::test]
async fn a_resumed_sha512_ingest_rehashes_its_data_with_sha512() {
    let (_tmp, store) = store();
    let data = data(3);
    let desc = desc(&data, Algorithm::Sha512);
    let half = data.len() / 2;
    let mut w = store
        .writer(WriterOpts::new("resume").expected(desc.clone()))
        .await
        .unwrap();
    w.write_all(&data[..half]).await.unwrap();
    w.flush().await.unwrap();
    drop(w);
    // Reopened without the descriptor: the recorded expected digest picks the algorithm.
    let mut w = store.writer(WriterOpts::new("resume")).await.unwrap();
    assert_eq!(w.offset(), half as u64);
    w.write_all(&data[half..]).await.unwrap();
    assert_eq!(w.digest().await.unwrap(), *desc.digest());
    w.truncate(half as u64).await.unwrap();
    w.write_all(&data[half..]).await.unwrap();
    w.commit(desc.size(), None).await.unwrap();
    assert!(read_blob(&store, &desc, u64::MAX).await.unwrap() == data);
}

#[tokio::test]
async fn write_blob_and_follow_handle_sha384_blobs() {
    let (_tmp, store) = store();
    let data = data(9);
    let desc = desc(&data, Algorithm::Sha384);
    let follow = store.follow();
    let reader = {
        let follow = follow.clone();
        let desc = desc.clone();
        tokio::spawn(async move {
            let ra = follow.reader_at(&desc).await?;
            let mut out = Vec::new();
            ReaderAtReader::new(ra).read_to_end(&mut out).await.unwrap();
            Ok::<_, dist_content::Error>(out)
        })
    };
    write_blob(&store, "sha384-layer", &desc, &data[..])
        .await
        .unwrap();
    let followed = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(followed == data);
}

#[tokio::test]
async fn unsupported_algorithms_are_invalid_arguments_for_writers_and_commits() {
    let (_tmp, store) = store();
    let odd: Digest = "blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        .parse()
        .unwrap();
    let desc = Descriptor::new(MediaType::ImageLayer, 3, odd.clone());
    let err = store
        .writer(WriterOpts::new("odd").expected(desc))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

    let mut w = store.writer(WriterOpts::new("odd2")).await.unwrap();
    w.write_all(b"abc").await.unwrap();
    let err = w.commit(3, Some(&odd)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}
