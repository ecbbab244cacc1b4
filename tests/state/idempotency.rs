//! `Idempotency-Key` records: start, in progress, replay, mismatch, abandon, expiry.

use std::time::Duration;

use pingpost::state::IdempotencyBegin::{InProgress, Mismatch, Replay, Started};

use crate::Backend;

const TTL: Duration = Duration::from_secs(60);

async fn a_key_runs_once_then_replays_its_first_response(backend: &Backend) {
    let state = backend.state();
    let begin = |hash: &'static str| {
        let state = state.clone();
        async move { state.idempotency_begin("s1", "k", hash, TTL).await.unwrap() }
    };
    assert_eq!(begin("h1").await, Started);
    assert_eq!(
        begin("h1").await,
        InProgress,
        "the first request still runs"
    );
    state
        .idempotency_complete("s1", "k", "h1", "{\"a\":1}", TTL)
        .await
        .unwrap();
    assert_eq!(begin("h1").await, Replay("{\"a\":1}".into()));
    assert_eq!(
        begin("h1").await,
        Replay("{\"a\":1}".into()),
        "again and again"
    );
}

async fn a_key_used_with_another_body_is_refused(backend: &Backend) {
    let state = backend.state();
    state.idempotency_begin("s1", "k", "h1", TTL).await.unwrap();
    assert_eq!(
        state.idempotency_begin("s1", "k", "h2", TTL).await.unwrap(),
        Mismatch,
        "while the first request runs"
    );
    state
        .idempotency_complete("s1", "k", "h1", "{}", TTL)
        .await
        .unwrap();
    assert_eq!(
        state.idempotency_begin("s1", "k", "h2", TTL).await.unwrap(),
        Mismatch,
        "after it finished"
    );
    assert_eq!(
        state.idempotency_begin("s2", "k", "h2", TTL).await.unwrap(),
        Started,
        "keys are per scope (seller)"
    );
}

async fn an_abandoned_key_can_be_used_again(backend: &Backend) {
    let state = backend.state();
    state.idempotency_begin("s1", "k", "h1", TTL).await.unwrap();
    state.idempotency_abandon("s1", "k").await.unwrap();
    assert_eq!(
        state.idempotency_begin("s1", "k", "h2", TTL).await.unwrap(),
        Started
    );
    state
        .idempotency_abandon("s1", "never-used")
        .await
        .expect("abandoning an unknown key is a no-op");
}

async fn a_key_expires_after_its_ttl(backend: &Backend) {
    let state = backend.state();
    let short = Duration::from_millis(100);
    state
        .idempotency_begin("s1", "k", "h1", short)
        .await
        .unwrap();
    state
        .idempotency_complete("s1", "k", "h1", "{}", short)
        .await
        .unwrap();
    assert_eq!(
        state.idempotency_begin("s1", "k", "h2", TTL).await.unwrap(),
        Mismatch,
        "still held before its ttl"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    state
        .idempotency_complete("s1", "k", "h1", "{\"late\":1}", short)
        .await
        .unwrap();
    assert_eq!(
        state.idempotency_begin("s1", "k", "h2", TTL).await.unwrap(),
        Started,
        "expired, and a late completion does not bring it back"
    );
    assert_eq!(
        state
            .idempotency_begin("s1", "z", "h1", Duration::ZERO)
            .await
            .unwrap(),
        Started
    );
    assert_eq!(
        state
            .idempotency_begin("s1", "z", "h2", Duration::ZERO)
            .await
            .unwrap(),
        Started,
        "a zero ttl keeps nothing"
    );
}

async fn another_node_sees_the_same_records(backend: &Backend) {
    let (a, b) = (backend.state(), backend.another_node().await);
    assert_eq!(
        a.idempotency_begin("s1", "k", "h1", TTL).await.unwrap(),
        Started
    );
    assert_eq!(
        b.idempotency_begin("s1", "k", "h1", TTL).await.unwrap(),
        InProgress
    );
    a.idempotency_complete("s1", "k", "h1", "{\"ok\":true}", TTL)
        .await
        .unwrap();
    assert_eq!(
        b.idempotency_begin("s1", "k", "h1", TTL).await.unwrap(),
        Replay("{\"ok\":true}".into())
    );
}

crate::conformance!(
    a_key_runs_once_then_replays_its_first_response,
    a_key_used_with_another_body_is_refused,
    an_abandoned_key_can_be_used_again,
    a_key_expires_after_its_ttl,
    another_node_sees_the_same_records,
);
