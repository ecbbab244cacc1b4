//! The shared-state conformance suite: every case runs against the in-process state and
//! against Redis, which must behave the same. The Redis half runs when
//! `PINGPOST_TEST_REDIS_URL` is set (CI sets it); without it those cases say "skipped" and
//! pass. Each Redis case works under its own key prefix and deletes its keys at the end.

mod caps;
mod concurrency;
mod idempotency;
mod rate_limit;
mod readiness;
mod redis_only;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use pingpost::auction::CapWindow;
use pingpost::state::{InProcessState, RedisState, Reservation, SharedState};

pub const REDIS_URL_VAR: &str = "PINGPOST_TEST_REDIS_URL";

/// The implementation a case runs against, and a way to reach it from a second node.
pub enum Backend {
    InProcess(Arc<InProcessState>),
    Redis {
        url: String,
        prefix: String,
        node: Arc<RedisState>,
    },
}

impl Backend {
    pub fn in_process() -> Backend {
        Backend::InProcess(Arc::new(InProcessState::new()))
    }

    /// A Redis backend under a fresh prefix, or `None` (skipped) when no Redis is configured.
    /// A configured Redis that does not answer fails the test: CI must not skip silently.
    pub async fn redis() -> Option<Backend> {
        let Ok(url) = std::env::var(REDIS_URL_VAR) else {
            eprintln!("skipped: {REDIS_URL_VAR} is not set");
            return None;
        };
        let prefix = format!("pingpost-test:{}:", uuid::Uuid::now_v7().simple());
        let node = RedisState::connect(&url, &prefix)
            .await
            .expect("connecting to the test Redis");
        node.check()
            .await
            .unwrap_or_else(|e| panic!("{REDIS_URL_VAR}={url} does not answer: {e:#}"));
        Some(Backend::Redis {
            url,
            prefix,
            node: Arc::new(node),
        })
    }

    /// The first node's state.
    pub fn state(&self) -> Arc<dyn SharedState> {
        match self {
            Backend::InProcess(state) => state.clone(),
            Backend::Redis { node, .. } => node.clone(),
        }
    }

    /// Another node sharing the state: in process that is the same process (one node is all
    /// there is), with Redis a separate connection as another exchange node would have.
    pub async fn another_node(&self) -> Arc<dyn SharedState> {
        match self {
            Backend::InProcess(state) => state.clone(),
            Backend::Redis { url, prefix, .. } => Arc::new(
                RedisState::connect(url, prefix)
                    .await
                    .expect("connecting a second node"),
            ),
        }
    }

    pub async fn clean_up(&self) {
        if let Backend::Redis { url, prefix, .. } = self {
            let mut con = raw_connection(url).await;
            for key in keys_under(&mut con, prefix).await {
                let _: () = ::redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .expect("deleting a test key");
            }
        }
    }
}

pub async fn raw_connection(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .expect("the test Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to the test Redis")
}

pub async fn keys_under(
    con: &mut ::redis::aio::MultiplexedConnection,
    prefix: &str,
) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .expect("scanning the test keys");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Runs each named case (an `async fn(&Backend)` in the invoking module) once in process and
/// once against Redis.
#[macro_export]
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&$crate::Backend::in_process()).await;
                }
            )*
        }
        $crate::redis_cases!($($case),*);
    };
}

/// Runs each named case against Redis only, when one is configured.
#[macro_export]
macro_rules! redis_cases {
    ($($case:ident),* $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = $crate::Backend::redis().await else {
                        return;
                    };
                    super::$case(&backend).await;
                    backend.clean_up().await;
                }
            )*
        }
    };
}

/// Now, to the millisecond (both implementations then see exactly the same instants).
pub fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("a representable now")
}

/// A day-long window around now.
pub fn day(key: &str, count_max: Option<u32>, spend_max_cents: Option<i64>) -> CapWindow {
    let start = now() - Duration::hours(1);
    CapWindow {
        key: key.into(),
        start,
        end: start + Duration::days(1),
        count_max,
        spend_max_cents,
    }
}

pub fn reservation(
    id: &str,
    buyer_id: &str,
    windows: &[CapWindow],
    price_cents: i64,
    expires_at: DateTime<Utc>,
) -> Reservation {
    Reservation {
        id: id.into(),
        buyer_id: buyer_id.into(),
        windows: windows.to_vec(),
        price_cents,
        expires_at,
    }
}
