//! Read repair: a replica that missed a write is brought up to date by a read.

mod common;

use cartwheel::config::TuningFlags;
use common::{single_region, InProcessCluster};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_read_repairs_a_replica_that_lost_its_data() {
    let mut cluster = InProcessCluster::start(&single_region(3, 3), TuningFlags::default()).await;
    let http = reqwest::Client::new();
    let put = http
        .put(cluster.url(0, "/v1/kv/basket?consistency=all"))
        .body("apples")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    cluster.restart_empty(2).await;
    assert_eq!(
        cluster.status(2).await.keys,
        0,
        "the restarted replica starts empty"
    );
    let read = http
        .get(cluster.url(0, "/v1/kv/basket?consistency=all"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.text().await.unwrap(), "apples");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cluster.status(2).await.keys != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the empty replica was never repaired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cluster.status(0).await.read_repairs >= 1,
        "the coordinator counted its repair"
    );
    cluster.shutdown().await;
}
