//! What only Redis can do: be unreachable, lose its data, forget its scripts, and keep keys
//! that must not live for ever.

use std::time::{Duration, Instant};

use chrono::Duration as Span;
use pingpost::state::{RedisState, SharedState};
use tokio::process::{Child, Command};

use crate::{day, keys_under, now, raw_connection, reservation, Backend, REDIS_URL_VAR};

/// Fails unless the call answers within a second.
async fn within_a_second<T>(name: &str, call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let answer = call.await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{name} took {:?}",
        started.elapsed()
    );
    answer
}

/// Nothing listens on port 1: every call fails at once, none hangs, none panics.
#[tokio::test]
async fn an_unreachable_redis_fails_each_call_quickly() {
    let state = within_a_second(
        "connect",
        RedisState::connect("redis://127.0.0.1:1", "pingpost-test:"),
    )
    .await
    .expect("an unreachable Redis is not a start-up error");
    let w = [day("day:a", Some(1), None)];
    let r = reservation("r1", "b", &w, 100, now() + Span::minutes(2));
    let ttl = Duration::from_secs(60);
    macro_rules! fails {
        ($name:literal, $call:expr) => {
            assert!(
                within_a_second($name, $call).await.is_err(),
                "{} succeeded without Redis",
                $name
            )
        };
    }
    for _ in 0..2 {
        fails!("check", state.check());
        fails!(
            "idempotency_begin",
            state.idempotency_begin("s", "k", "h", ttl)
        );
        fails!(
            "idempotency_complete",
            state.idempotency_complete("s", "k", "h", "{}", ttl)
        );
        fails!("idempotency_abandon", state.idempotency_abandon("s", "k"));
        fails!("unseeded", state.unseeded("b", &w));
        fails!("seed", state.seed("b", &w[0], 0, 0));
        fails!("caps_room", state.caps_room(&[("b", &w)], now()));
        fails!("reserve", state.reserve(&r, now()));
        fails!("release", state.release("r1"));
        fails!("commit", state.commit(&r));
        fails!("rate_limit", state.rate_limit("s", 5, 10));
    }
}

/// The timeouts hold whatever the path: a port that accepts but never answers.
#[tokio::test]
async fn a_silent_redis_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    // Accept and hold connections, answering nothing.
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let state = RedisState::connect(&url, "pingpost-test:").await.unwrap();
    let started = Instant::now();
    assert!(state.check().await.is_err());
    assert!(state.rate_limit("s", 5, 10).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "two calls took {:?}",
        started.elapsed()
    );
    held.abort();
}

/// A Redis server of this test's own on `port`, gone with the handle.
fn redis_server(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting redis-server (it is installed where Redis tests run)")
}

async fn answers_within_5s(state: &RedisState) {
    let started = Instant::now();
    while let Err(e) = state.check().await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Redis is back, yet still unreachable: {e:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis goes away and comes back empty (no persistence): calls fail fast meanwhile, then
/// work again on the same handle, scripts loaded anew and windows reported unseeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_resumes_when_redis_returns() {
    if std::env::var(REDIS_URL_VAR).is_err() {
        eprintln!("skipped: {REDIS_URL_VAR} is not set");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = redis_server(port);
    let state = RedisState::connect(&format!("redis://127.0.0.1:{port}"), "pingpost-test:")
        .await
        .unwrap();
    answers_within_5s(&state).await;
    let w = [day("day:a", Some(2), None)];
    let (now, later) = (now(), now() + Span::minutes(2));
    state.seed("b", &w[0], 1, 0).await.unwrap();
    assert!(state
        .reserve(&reservation("r1", "b", &w, 100, later), now)
        .await
        .unwrap());

    server
        .kill()
        .await
        .expect("stopping the test's redis-server");
    assert!(within_a_second("check", state.check()).await.is_err());
    assert!(
        within_a_second("caps_room", state.caps_room(&[("b", &w)], now))
            .await
            .is_err()
    );

    let _server = redis_server(port);
    answers_within_5s(&state).await;
    assert_eq!(
        state.unseeded("b", &w).await.unwrap(),
        w,
        "Redis came back empty"
    );
    state.seed("b", &w[0], 1, 0).await.unwrap();
    assert!(state
        .reserve(&reservation("r2", "b", &w, 100, later), now)
        .await
        .unwrap());
    assert!(!state
        .reserve(&reservation("r3", "b", &w, 100, later), now)
        .await
        .unwrap());
}

/// A flushed or restarted Redis: the windows read as unseeded again (so the exchange reloads
/// them from the database), a sale committed meanwhile does not restart a window from zero,
/// and a reservation against a window without totals is refused rather than counted from zero.
async fn lost_counters_are_seeded_again_never_restarted_from_zero(backend: &Backend) {
    let Backend::Redis { url, prefix, .. } = backend else {
        unreachable!("a Redis case")
    };
    let state = backend.state();
    let w = [day("day:a", Some(3), None)];
    let (now, later) = (now(), now() + Span::minutes(2));
    state.seed("b", &w[0], 2, 0).await.unwrap();
    let r1 = reservation("r1", "b", &w, 100, later);
    assert!(state.reserve(&r1, now).await.unwrap());

    let mut con = raw_connection(url).await;
    for key in keys_under(&mut con, prefix).await {
        let _: () = ::redis::cmd("DEL")
            .arg(key)
            .query_async(&mut con)
            .await
            .unwrap();
    }

    assert_eq!(state.unseeded("b", &w).await.unwrap(), w);
    state.commit(&r1).await.unwrap();
    assert_eq!(
        state.unseeded("b", &w).await.unwrap(),
        w,
        "the commit did not make a window holding only itself"
    );
    assert!(
        state
            .reserve(&reservation("r2", "b", &w, 100, later), now)
            .await
            .is_err(),
        "no totals: refused, not counted from zero"
    );
    // The database has the two earlier sales and r1.
    state.seed("b", &w[0], 3, 0).await.unwrap();
    assert!(!state
        .reserve(&reservation("r2", "b", &w, 100, later), now)
        .await
        .unwrap());
}

/// Everything stored expires: no key is left to grow Redis for ever.
async fn every_key_has_an_expiry(backend: &Backend) {
    let Backend::Redis { url, prefix, .. } = backend else {
        unreachable!("a Redis case")
    };
    let state = backend.state();
    let w = [day("day:a", Some(5), Some(10_000))];
    let (now, later) = (now(), now() + Span::minutes(2));
    state.seed("b", &w[0], 0, 0).await.unwrap();
    assert!(state
        .reserve(&reservation("r1", "b", &w, 100, later), now)
        .await
        .unwrap());
    assert!(state
        .reserve(&reservation("r2", "b", &w, 100, later), now)
        .await
        .unwrap());
    state
        .commit(&reservation("r2", "b", &w, 100, later))
        .await
        .unwrap();
    state
        .idempotency_begin("s", "k", "h", Duration::from_secs(60))
        .await
        .unwrap();
    state.rate_limit("s", 5, 10).await.unwrap();

    let mut con = raw_connection(url).await;
    let keys = keys_under(&mut con, prefix).await;
    assert_eq!(
        keys.len(),
        6,
        "window, reservations, by expiry, r1's index, idempotency, rate: {keys:?}"
    );
    for key in keys {
        let ttl_ms: i64 = ::redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(ttl_ms > 0, "{key} has no expiry ({ttl_ms})");
    }
}

crate::redis_cases!(
    lost_counters_are_seeded_again_never_restarted_from_zero,
    every_key_has_an_expiry,
);
