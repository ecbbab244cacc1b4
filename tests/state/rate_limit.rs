//! Seller rate limits: the burst passes, the next request waits, and every node counts
//! against the same limit.

use std::time::Duration;

use pingpost::state::RateDecision;

use crate::Backend;

const RATE_PER_S: u32 = 5;
const BURST: u32 = 10;
/// One emission interval at 5 per second: the longest a request over the burst waits.
const INTERVAL: Duration = Duration::from_millis(200);

fn assert_limited(decision: RateDecision) {
    match decision {
        RateDecision::Limited(wait) => assert!(
            wait > Duration::ZERO && wait <= INTERVAL,
            "waits {wait:?}, more than nothing and at most one interval"
        ),
        RateDecision::Allow => panic!("over the burst, yet allowed"),
    }
}

async fn a_seller_gets_its_burst_then_waits(backend: &Backend) {
    let state = backend.state();
    for i in 0..BURST {
        assert_eq!(
            state.rate_limit("s1", RATE_PER_S, BURST).await.unwrap(),
            RateDecision::Allow,
            "request {i} of the burst"
        );
    }
    assert_limited(state.rate_limit("s1", RATE_PER_S, BURST).await.unwrap());
    assert_eq!(
        state.rate_limit("s2", RATE_PER_S, BURST).await.unwrap(),
        RateDecision::Allow,
        "another seller is not affected"
    );
    tokio::time::sleep(INTERVAL + Duration::from_millis(50)).await;
    assert_eq!(
        state.rate_limit("s1", RATE_PER_S, BURST).await.unwrap(),
        RateDecision::Allow,
        "one interval later, one more"
    );
}

async fn every_node_counts_against_one_limit(backend: &Backend) {
    let nodes = [backend.state(), backend.another_node().await];
    for i in 0..BURST as usize {
        assert_eq!(
            nodes[i % 2]
                .rate_limit("s1", RATE_PER_S, BURST)
                .await
                .unwrap(),
            RateDecision::Allow
        );
    }
    for node in &nodes {
        assert_limited(node.rate_limit("s1", RATE_PER_S, BURST).await.unwrap());
    }
}

crate::conformance!(
    a_seller_gets_its_burst_then_waits,
    every_node_counts_against_one_limit,
);
