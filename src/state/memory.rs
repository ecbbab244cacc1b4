//! Shared state kept in this process: right for one node, lost on restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::cap_book::CapBook;
use super::{IdempotencyBegin, RateDecision, Reservation, SharedState};
use crate::auction::CapWindow;

/// Most idempotency records kept; the oldest go first when it is reached.
const IDEMPOTENCY_RECORDS_MAX: usize = 500_000;

enum Record {
    Running { body_hash: String },
    Done { body_hash: String, response: String },
}

struct Entry {
    record: Record,
    expires: Instant,
}

#[derive(Default)]
struct Idempotency {
    entries: HashMap<(String, String), Entry>,
    /// Insertion order, for expiry and the size bound.
    order: VecDeque<(Instant, (String, String))>,
}

impl Idempotency {
    fn purge(&mut self, now: Instant) {
        while let Some((expires, key)) = self.order.front() {
            let full = self.entries.len() > IDEMPOTENCY_RECORDS_MAX;
            if *expires > now && !full {
                break;
            }
            // Only drop the entry if it is the one this queue slot was written for.
            if self.entries.get(key).is_some_and(|e| e.expires == *expires) {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }
}

/// A seller's limiter with the rate and burst it was built for.
type Limiter = (u32, u32, Arc<DefaultDirectRateLimiter>);

#[derive(Default)]
pub struct InProcessState {
    idempotency: Mutex<Idempotency>,
    caps: Mutex<CapBook>,
    limiters: Mutex<HashMap<String, Limiter>>,
}

impl InProcessState {
    pub fn new() -> InProcessState {
        InProcessState::default()
    }

    fn idempotency(&self) -> std::sync::MutexGuard<'_, Idempotency> {
        self.idempotency.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn caps(&self) -> std::sync::MutexGuard<'_, CapBook> {
        self.caps.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn limiter(
        &self,
        seller_id: &str,
        rate_per_s: u32,
        burst: u32,
    ) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        match limiters.get(seller_id) {
            Some((rate, b, limiter)) if *rate == rate_per_s && *b == burst => limiter.clone(),
            _ => {
                let rate = NonZeroU32::new(rate_per_s).unwrap_or(NonZeroU32::MIN);
                let burst_n = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
                let limiter = Arc::new(RateLimiter::direct(
                    Quota::per_second(rate).allow_burst(burst_n),
                ));
                limiters.insert(seller_id.to_string(), (rate_per_s, burst, limiter.clone()));
                limiter
            }
        }
    }
}

#[async_trait]
impl SharedState for InProcessState {
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        body_hash: &str,
        ttl: Duration,
    ) -> anyhow::Result<IdempotencyBegin> {
        let now = Instant::now();
        let mut idem = self.idempotency();
        idem.purge(now);
        let id = (scope.to_string(), key.to_string());
        // Purging goes in insertion order; an expired entry behind a live one is dropped here.
        if idem.entries.get(&id).is_some_and(|e| e.expires <= now) {
            idem.entries.remove(&id);
        }
        if let Some(entry) = idem.entries.get(&id) {
            return Ok(match &entry.record {
                Record::Running { body_hash: h } | Record::Done { body_hash: h, .. }
                    if h != body_hash =>
                {
                    IdempotencyBegin::Mismatch
                }
                Record::Running { .. } => IdempotencyBegin::InProgress,
                Record::Done { response, .. } => IdempotencyBegin::Replay(response.clone()),
            });
        }
        let expires = now + ttl;
        idem.entries.insert(
            id.clone(),
            Entry {
                record: Record::Running {
                    body_hash: body_hash.to_string(),
                },
                expires,
            },
        );
        idem.order.push_back((expires, id));
        Ok(IdempotencyBegin::Started)
    }

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        body_hash: &str,
        response: &str,
        _ttl: Duration,
    ) -> anyhow::Result<()> {
        let mut idem = self.idempotency();
        if let Some(entry) = idem.entries.get_mut(&(scope.to_string(), key.to_string())) {
            entry.record = Record::Done {
                body_hash: body_hash.to_string(),
                response: response.to_string(),
            };
        }
        Ok(())
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> anyhow::Result<()> {
        self.idempotency()
            .entries
            .remove(&(scope.to_string(), key.to_string()));
        Ok(())
    }

    async fn unseeded(
        &self,
        buyer_id: &str,
        windows: &[CapWindow],
    ) -> anyhow::Result<Vec<CapWindow>> {
        let book = self.caps();
        Ok(windows
            .iter()
            .filter(|w| !book.is_seeded(buyer_id, w))
            .cloned()
            .collect())
    }

    async fn seed(
        &self,
        buyer_id: &str,
        window: &CapWindow,
        count: i64,
        spend_cents: i64,
    ) -> anyhow::Result<()> {
        self.caps().seed(buyer_id, window, count, spend_cents);
        Ok(())
    }

    async fn caps_room(
        &self,
        checks: &[(&str, &[CapWindow])],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<bool>> {
        let mut book = self.caps();
        Ok(checks
            .iter()
            .map(|(buyer, windows)| book.has_room(buyer, windows, now))
            .collect())
    }

    async fn reserve(&self, reservation: &Reservation, now: DateTime<Utc>) -> anyhow::Result<bool> {
        Ok(self.caps().reserve(reservation, now))
    }

    async fn release(&self, reservation_id: &str) -> anyhow::Result<()> {
        self.caps().release(reservation_id);
        Ok(())
    }

    async fn commit(&self, reservation: &Reservation) -> anyhow::Result<()> {
        self.caps().commit(reservation);
        Ok(())
    }

    async fn rate_limit(
        &self,
        seller_id: &str,
        rate_per_s: u32,
        burst: u32,
    ) -> anyhow::Result<RateDecision> {
        let limiter = self.limiter(seller_id, rate_per_s, burst);
        Ok(match limiter.check() {
            Ok(()) => RateDecision::Allow,
            Err(not_until) => {
                RateDecision::Limited(not_until.wait_time_from(DefaultClock::default().now()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_replays_its_first_response_and_refuses_another_body() {
        let state = InProcessState::new();
        let ttl = Duration::from_secs(60);
        assert_eq!(
            state.idempotency_begin("s", "k", "h1", ttl).await.unwrap(),
            IdempotencyBegin::Started
        );
        assert_eq!(
            state.idempotency_begin("s", "k", "h1", ttl).await.unwrap(),
            IdempotencyBegin::InProgress
        );
        state
            .idempotency_complete("s", "k", "h1", "{\"a\":1}", ttl)
            .await
            .unwrap();
        assert_eq!(
            state.idempotency_begin("s", "k", "h1", ttl).await.unwrap(),
            IdempotencyBegin::Replay("{\"a\":1}".into())
        );
        assert_eq!(
            state.idempotency_begin("s", "k", "h2", ttl).await.unwrap(),
            IdempotencyBegin::Mismatch
        );
        // Keys are per scope (seller).
        assert_eq!(
            state.idempotency_begin("t", "k", "h2", ttl).await.unwrap(),
            IdempotencyBegin::Started
        );
    }

    #[tokio::test]
    async fn an_abandoned_or_expired_key_can_be_used_again() {
        let state = InProcessState::new();
        state
            .idempotency_begin("s", "k", "h1", Duration::from_secs(60))
            .await
            .unwrap();
        state.idempotency_abandon("s", "k").await.unwrap();
        assert_eq!(
            state
                .idempotency_begin("s", "k", "h2", Duration::ZERO)
                .await
                .unwrap(),
            IdempotencyBegin::Started
        );
        assert_eq!(
            state
                .idempotency_begin("s", "k", "h3", Duration::from_secs(60))
                .await
                .unwrap(),
            IdempotencyBegin::Started
        );
    }
}
