//! Checks of managing: labels, walking, deleting, aborting, listing ingests.

use std::collections::HashMap;

use super::{CheckResult, Failure, at, check_content, content, desc, expect_kind, write_in_pieces};
use crate::{ErrorKind, Filter, Info, Store, WriterOpts, write_blob};

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

pub(super) async fn labels<S: Store + ?Sized>(store: &S) -> CheckResult {
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

pub(super) async fn walk_and_delete<S: Store + ?Sized>(store: &S) -> CheckResult {
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

pub(super) async fn abort_and_list_statuses<S: Store + ?Sized>(store: &S) -> CheckResult {
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

pub(super) async fn expected_existing_content<S: Store + ?Sized>(store: &S) -> CheckResult {
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
