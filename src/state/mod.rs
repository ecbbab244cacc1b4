//! State shared by the exchange's nodes: idempotency records today; caps, reservations and
//! rate limits go through the same interface. In process by default, Redis when configured.

mod memory;

use std::time::Duration;

use async_trait::async_trait;

pub use memory::InProcessState;

/// What an `Idempotency-Key` lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use: the caller runs the request, then completes or abandons the key.
    Started,
    /// Seen with this body and finished: the first response body.
    Replay(String),
    /// Seen with another body.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        body_hash: &str,
        ttl: Duration,
    ) -> anyhow::Result<IdempotencyBegin>;
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        body_hash: &str,
        response: &str,
        ttl: Duration,
    ) -> anyhow::Result<()>;
    /// Frees a key whose request failed, so the client can retry with it.
    async fn idempotency_abandon(&self, scope: &str, key: &str) -> anyhow::Result<()>;
}
