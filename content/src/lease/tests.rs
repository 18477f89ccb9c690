use std::time::{Duration, SystemTime};

use super::*;
use crate::ErrorKind;

fn leases() -> (tempfile::TempDir, Leases) {
    let tmp = tempfile::tempdir().unwrap();
    let leases = Leases::open(tmp.path().join("leases")).unwrap();
    (tmp, leases)
}

#[tokio::test]
async fn a_held_lease_is_live_and_lists_what_was_attached_once() {
    let (_tmp, leases) = leases();
    let lease = leases
        .create(LeaseOptions::default().with_id("pull-1"))
        .await
        .unwrap();
    let d = crate::sha256_of(b"x");
    lease.attach(&[Resource::content(&d)]).await.unwrap();
    lease
        .attach(&[
            Resource::ingest("layer-x\nwith newline"),
            Resource::content(&d),
        ])
        .await
        .unwrap();
    let info = leases.get("pull-1").await.unwrap();
    assert!(info.held);
    assert!(info.is_live(
        SystemTime::now() + Duration::from_secs(3600),
        Duration::ZERO
    ));
    assert_eq!(
        info.resources,
        [
            Resource::content(&d),
            Resource::ingest("layer-x\nwith newline")
        ]
    );
}

#[tokio::test]
async fn a_dropped_lease_protects_only_for_the_grace_period() {
    let (_tmp, leases) = leases();
    let lease = leases.create(LeaseOptions::default()).await.unwrap();
    let id = lease.id().to_owned();
    drop(lease);
    let info = leases.get(&id).await.unwrap();
    assert!(!info.held);
    let now = SystemTime::now();
    assert!(info.is_live(now, Duration::from_secs(60)));
    assert!(!info.is_live(now + Duration::from_secs(61), Duration::from_secs(60)));
}

#[tokio::test]
async fn an_expiring_lease_outlives_its_holder_until_it_expires() {
    let (_tmp, leases) = leases();
    let at = SystemTime::now() + Duration::from_secs(600);
    let lease = leases
        .create(LeaseOptions::default().with_expire(at))
        .await
        .unwrap();
    let id = lease.id().to_owned();
    drop(lease);
    let info = leases.get(&id).await.unwrap();
    assert!(info.is_live(at - Duration::from_secs(1), Duration::ZERO));
    assert!(!info.is_live(at + Duration::from_secs(1), Duration::ZERO));
}

#[tokio::test]
async fn release_deletes_the_lease_and_a_second_id_is_refused() {
    let (_tmp, leases) = leases();
    let lease = leases
        .create(LeaseOptions::default().with_id("same"))
        .await
        .unwrap();
    let again = leases.create(LeaseOptions::default().with_id("same")).await;
    assert_eq!(again.unwrap_err().kind(), ErrorKind::AlreadyExists);
    lease.release().await.unwrap();
    assert!(leases.list().await.unwrap().is_empty());
    let gone = leases.attach("same", &[Resource::ingest("r")]).await;
    assert_eq!(gone.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        leases.delete("same").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn attach_waits_for_a_collection_in_progress() {
    let (_tmp, leases) = leases();
    let lease = leases.create(LeaseOptions::default()).await.unwrap();
    let gc = leases.lock_for_collection().unwrap();
    let attach = tokio::spawn({
        let leases = leases.clone();
        let id = lease.id().to_owned();
        async move { leases.attach(&id, &[Resource::ingest("r")]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !attach.is_finished(),
        "attach went ahead during a collection"
    );
    assert!(leases.get(lease.id()).await.unwrap().resources.is_empty());
    drop(gc);
    attach.await.unwrap().unwrap();
    assert_eq!(leases.get(lease.id()).await.unwrap().resources.len(), 1);
}
