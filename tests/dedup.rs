//! Exactly-once across the whole dedup window: retries are deduplicated
//! however many requests came between, on every replica alike, through
//! restarts and snapshots; records past the window are dropped identically
//! everywhere.

use std::sync::Arc;
use std::time::Duration;

use boat_tests::{others, Sandbox};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_twenty_thousand_requests_still_gets_its_first_outcome() {
    let args = ["--snapshot-every", "100", "--keep-after-snapshot", "10"];
    let mut sb = Sandbox::start(3, &args).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let first = sb.predict(leader, "the first", Some("first")).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);

    // 20,500 more keyed requests from 64 clients. A client that gets a 503
    // (a leader starved of CPU on a loaded machine can lose its majority for
    // a moment) retries with the same key wherever the leader is, as a
    // client of an exactly-once service should.
    let (client, url, urls) = (sb.client().clone(), sb.url(leader), sb.urls());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (client, url, urls, next) = (client.clone(), url.clone(), urls.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= 20_500 {
                    return;
                }
                let (body, key) = (json!({"input": format!("r{n}")}), format!("k{n}"));
                let mut r = client.predict(&url, &body, Some(&key)).await.unwrap();
                if r.status != 200 {
                    let deadline = std::time::Instant::now() + Duration::from_secs(20);
                    r = client.predict_anywhere(&urls, &body, Some(&key), deadline).await.unwrap();
                }
                assert_eq!(r.status, 200, "{}", r.text);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Rebuild two replicas: one restarts from its own snapshot and log, one
    // is wiped and takes the leader's snapshot with its records.
    let leader = sb.wait_for_leader().await.unwrap();
    let [restarted, wiped] = others(leader)[..] else { unreachable!() };
    sb.rebuild(restarted, wiped).await.unwrap();

    let again = sb.predict_anywhere(&json!({"input": "the first"}), Some("first")).await.unwrap();
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["duplicate"], true, "{}", again.text);
    for field in ["index", "term", "output"] {
        assert_eq!(again.body[field], first.body[field], "{field}");
    }
    let converged = sb.wait_for_convergence().await.unwrap();
    for s in &converged {
        assert_eq!(s.state_digest, converged[0].state_digest, "{converged:#?}");
        assert_eq!(s.idempotency_records, converged[0].idempotency_records);
    }
    assert!(converged[0].idempotency_records > 20_000);
    // Every replica, rebuilt or not, holds the first record itself.
    for i in 0..3 {
        let r = sb.client().get(&sb.url(i), "/predictions/first?consistency=stale").await.unwrap();
        assert_eq!(r.status, 200, "node {i}: {}", r.text);
        assert_eq!(r.body["index"], first.body["index"], "node {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_past_the_window_are_dropped_identically_on_every_replica() {
    let sb = Sandbox::start(3, &["--record-ttl-s", "1"]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let first = sb.predict(leader, "early", Some("early")).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
    let replay = sb.predict(leader, "early", Some("early")).await.unwrap();
    assert_eq!(replay.body["duplicate"], true, "inside the window: {}", replay.text);

    // Keep the log moving until the leader's clock has left the window.
    let mut n = 0;
    loop {
        let r = sb.predict(leader, &format!("filler {n}"), None).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        n += 1;
        let gone = sb.client().get(&sb.url(leader), "/predictions/early").await.unwrap();
        if gone.status == 404 {
            break;
        }
        assert!(n < 2_000, "the record never left the window");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = sb.predict(leader, "early", Some("early")).await.unwrap();
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    assert_eq!(fresh.body["duplicate"], false, "past the window the key runs again");
    assert_ne!(fresh.body["index"], first.body["index"]);

    let converged = sb.wait_for_convergence().await.unwrap();
    for s in &converged {
        assert_eq!(s.state_digest, converged[0].state_digest, "{converged:#?}");
        assert_eq!(s.idempotency_records, converged[0].idempotency_records, "{converged:#?}");
    }
}
