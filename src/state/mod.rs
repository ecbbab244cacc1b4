//! State shared by the exchange's nodes: idempotency records, caps and reservations, and
//! seller rate limits. In process by default, Redis when configured.

mod cap_book;
mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::redis::RedisState;
use crate::auction::CapWindow;
pub use memory::InProcessState;

/// A lead's count and price held against a buyer's caps from the auction until the sale
/// (committed), the post to that buyer fails (released), or the offer expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// One per ping and buyer: `<ping id>:<buyer id>`.
    pub id: String,
    pub buyer_id: String,
    pub windows: Vec<CapWindow>,
    pub price_cents: i64,
    pub expires_at: DateTime<Utc>,
}

/// Whether a request may pass a seller's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allow,
    /// Over the limit: try again after this long.
    Limited(Duration),
}

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

    /// Which of these windows have no committed totals loaded yet (they are seeded from
    /// the database, the system of record, so an empty or restarted state starts right).
    async fn unseeded(
        &self,
        buyer_id: &str,
        windows: &[CapWindow],
    ) -> anyhow::Result<Vec<CapWindow>>;
    async fn seed(
        &self,
        buyer_id: &str,
        window: &CapWindow,
        count: i64,
        spend_cents: i64,
    ) -> anyhow::Result<()>;
    /// For each buyer, whether committed + reserved leave room in every window.
    async fn caps_room(
        &self,
        checks: &[(&str, &[CapWindow])],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<bool>>;
    /// Checks and reserves in one atomic step; false if the lead would pass a cap.
    async fn reserve(&self, reservation: &Reservation, now: DateTime<Utc>) -> anyhow::Result<bool>;
    async fn release(&self, reservation_id: &str) -> anyhow::Result<()>;
    /// Turns the reservation into committed spend (adding it if it had lapsed).
    async fn commit(&self, reservation: &Reservation) -> anyhow::Result<()>;

    /// One request of a seller against its `rate_per_s` and `burst`.
    async fn rate_limit(
        &self,
        seller_id: &str,
        rate_per_s: u32,
        burst: u32,
    ) -> anyhow::Result<RateDecision>;

    /// Whether the state can be used now, for readiness. In process it always can.
    async fn check(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
