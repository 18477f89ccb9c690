//! Checks of writing: commits, status, resume variants, error states, tiny blobs.

use std::time::SystemTime;

use super::{
    CheckResult, Failure, at, check_content, content, desc, digest_of, expect_kind, write_in_pieces,
};
use crate::{ErrorKind, Store, WriterOpts, copy, write_blob};

pub(super) async fn writer_commit_and_read_back<S: Store + ?Sized>(store: &S) -> CheckResult {
    for (i, with_expected) in [false, true].into_iter().enumerate() {
        let (data, d) = content(256, 10 + i as u64);
        let mut opts = WriterOpts::new(format!("c{i}"));
        if with_expected {
            opts = opts.expected(desc(&data, &d)?);
        }
        let mut w = at("writer", store.writer(opts).await)?;
        write_in_pieces(&mut w, &data, 32).await?;
        let got = at("digest", w.digest().await)?;
        ensure!(got == d, "writer digest {got} != {d}");
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

pub(super) async fn update_status<S: Store + ?Sized>(store: &S) -> CheckResult {
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
            at("digest", w.digest().await)? == digest_of(&data[..to]),
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

pub(super) async fn commit_exists<S: Store + ?Sized>(store: &S) -> CheckResult {
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

pub(super) async fn expect_locked<S: Store + ?Sized>(store: &S, reference: &str) -> CheckResult {
    expect_kind(
        "second writer on a held ref",
        store.writer(WriterOpts::new(reference)).await,
        ErrorKind::Unavailable,
    )
}

pub(super) async fn commit_error_state<S: Store + ?Sized>(store: &S) -> CheckResult {
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
pub(super) enum Resume {
    Truncate,
    Discard,
    Copy,
    WriteBlob,
}

pub(super) async fn resume<S: Store + ?Sized>(store: &S, how: Resume) -> CheckResult {
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
                    at("digest", w.digest().await)? == digest_of(&data[..limit]),
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

pub(super) async fn small_blob<S: Store + ?Sized>(store: &S) -> CheckResult {
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

pub(super) async fn empty_blob<S: Store + ?Sized>(store: &S) -> CheckResult {
    let w = at("writer", store.writer(WriterOpts::new("empty")).await)?;
    let d = at("digest", w.digest().await)?;
    ensure!(d == digest_of(b""), "empty digest {d}");
    at("commit", w.commit(0, Some(&d)).await)?;
    check_content(store, b"", &d).await
}
