//! Shared state in Redis, so that several exchange nodes act as one: caps and reservations
//! (Lua scripts, so check-and-reserve is one atomic step), idempotency records and seller
//! rate limits. The rules are those of the in-process state; the conformance suite in
//! `tests/state/` runs the same cases against both. Needs Redis 7 or later (`PEXPIRETIME`).
//!
//! Key layout, every key under the configured prefix `<P>` (e.g. `pingpost:`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<P>cap:{<buyer>}:window:<window key>` | hash | `committed_count`, `committed_spend_cents`, `reserved_count`, `reserved_spend_cents` of one buyer in one cap window; kept until a day after the window ends |
//! | `<P>cap:{<buyer>}:reservations` | hash | reservation id → `{"price_cents":…,"windows":[…]}` |
//! | `<P>cap:{<buyer>}:reservations_by_expiry` | sorted set | reservation ids by offer expiry (µs, the caller's clock) |
//! | `<P>reservation:<reservation id>` | string | the buyer holding the reservation, so `release(id)` finds it |
//! | `<P>idempotency:<scope>:<key>` | hash | `state` (`running`/`done`), `body_hash`, `response`; the caller's TTL |
//! | `<P>rate:<seller>` | string | the seller's GCRA theoretical arrival time (µs, Redis's clock) |
//!
//! `{<buyer>}` is a hash tag: a buyer's cap keys share a cluster slot, so one script may
//! touch them all. Window totals missing (flushed, restarted Redis) read as unseeded, and
//! the exchange reloads them from the database; neither `reserve` nor `commit` recreates
//! them from zero, which would hide the sales the database has.

mod keys;
mod scripts;

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, FromRedisValue, Pipeline, Script, ScriptInvocation};
use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use keys::Keys;
use scripts::Scripts;

use super::{IdempotencyBegin, RateDecision, Reservation, SharedState};
use crate::auction::CapWindow;

/// Every call, connecting included, ends within this: an unreachable Redis is an error the
/// caller can act on (capped buyers sit out), never a hung ping.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a window's counters outlive the window (a sale posted just after midnight still
/// commits to the day its offer was made in).
const WINDOW_GRACE: chrono::Duration = chrono::Duration::days(1);
/// How long the reservation → buyer index outlives the offer; releasing later is a no-op.
const RESERVATION_INDEX_GRACE: chrono::Duration = chrono::Duration::minutes(10);

pub struct RedisState {
    client: ::redis::Client,
    /// Made on first use and kept: the manager reconnects by itself after a drop, and a
    /// Redis that was down at start-up is connected to on the first call after it is back.
    connection: OnceCell<ConnectionManager>,
    keys: Keys,
    scripts: Scripts,
}

impl RedisState {
    /// A handle on the Redis at `url` with every key under `prefix` (e.g. `pingpost:`).
    /// Fails on a malformed URL or prefix only: an unreachable Redis is logged, and each call
    /// fails until it is reachable (readiness reports it through `check`).
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisState> {
        if prefix.contains(['{', '}']) {
            bail!("the Redis key prefix {prefix:?} must not contain braces (they mark hash tags)");
        }
        let client = ::redis::Client::open(url).context("parsing the Redis URL")?;
        let state = RedisState {
            client,
            connection: OnceCell::new(),
            keys: Keys {
                prefix: prefix.to_string(),
            },
            scripts: Scripts::new(),
        };
        let mut pipe = ::redis::pipe();
        for script in state.scripts.all() {
            pipe.load_script(script).ignore();
        }
        if let Err(e) = state.query::<()>(&pipe).await {
            tracing::warn!(error = %format!("{e:#}"), "Redis is not reachable yet; shared state calls fail until it is");
        }
        Ok(state)
    }

    /// Redis answers (PING), for readiness.
    pub async fn check(&self) -> anyhow::Result<()> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("PING").ignore();
        self.query(&pipe).await
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        // No retries inside the manager (its backoff starts at a second): each call is the
        // retry, so a refused connection fails at once and the next call tries again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(0);
        let manager = self
            .connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .context("connecting to Redis")?;
        Ok(manager.clone())
    }

    /// Runs a pipeline within `CALL_TIMEOUT`. Scripts are sent by hash; when Redis does not
    /// know them (it restarted), they are loaded and the pipeline runs once more, which is
    /// safe because every command in these pipelines can run twice.
    async fn query<T: FromRedisValue + Send>(&self, pipe: &Pipeline) -> anyhow::Result<T> {
        let attempt = async {
            let mut con = self.connection().await?;
            match pipe.query_async::<T>(&mut con).await {
                Err(e) if e.kind() == ErrorKind::NoScriptError => {
                    let mut load = ::redis::pipe();
                    for script in self.scripts.all() {
                        load.load_script(script).ignore();
                    }
                    load.query_async::<()>(&mut con)
                        .await
                        .context("loading the scripts into Redis")?;
                    Ok(pipe.query_async::<T>(&mut con).await?)
                }
                result => Ok(result?),
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, attempt)
            .await
            .map_err(|_| anyhow!("Redis did not answer within {CALL_TIMEOUT:?}"))?
    }

    /// A caps script invocation for one buyer: KEYS[1] routes it to the buyer's slot,
    /// ARGV[1] is the base every key it touches starts with.
    fn caps_call<'a>(&self, script: &'a Script, buyer_id: &str) -> ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        call.key(self.keys.reservations(buyer_id))
            .arg(self.keys.buyer(buyer_id));
        call
    }
}

/// A cap limit as a script argument: empty when there is none.
fn limit<T: ToString>(max: Option<T>) -> String {
    max.map(|m| m.to_string()).unwrap_or_default()
}

/// When a window's counters may go (Unix ms): a while after the window ends, and never
/// sooner than that from now, whatever clock the window was computed with.
fn window_keep_until_ms(window: &CapWindow) -> i64 {
    (window.end.max(Utc::now()) + WINDOW_GRACE).timestamp_millis()
}

fn ttl_ms(ttl: Duration) -> u128 {
    // Round up: a record asked to live 0.4 ms must not be dropped at once.
    ttl.as_nanos().div_ceil(1_000_000)
}

#[async_trait]
impl SharedState for RedisState {
    async fn idempotency_begin(
        &self,
        scope: &str,
        key: &str,
        body_hash: &str,
        ttl: Duration,
    ) -> anyhow::Result<IdempotencyBegin> {
        let mut call = self.scripts.idempotency_begin.prepare_invoke();
        call.key(self.keys.idempotency(scope, key))
            .arg(body_hash)
            .arg(ttl_ms(ttl).to_string());
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&call);
        let (answer,): (Vec<String>,) = self.query(&pipe).await?;
        Ok(match answer.as_slice() {
            [outcome] if outcome == "started" => IdempotencyBegin::Started,
            [outcome] if outcome == "in_progress" => IdempotencyBegin::InProgress,
            [outcome] if outcome == "mismatch" => IdempotencyBegin::Mismatch,
            [outcome, response] if outcome == "replay" => {
                IdempotencyBegin::Replay(response.clone())
            }
            other => bail!("unexpected idempotency answer from Redis: {other:?}"),
        })
    }

    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        body_hash: &str,
        response: &str,
        _ttl: Duration,
    ) -> anyhow::Result<()> {
        let mut call = self.scripts.idempotency_complete.prepare_invoke();
        call.key(self.keys.idempotency(scope, key))
            .arg(body_hash)
            .arg(response);
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&call).ignore();
        self.query(&pipe).await
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> anyhow::Result<()> {
        let mut pipe = ::redis::pipe();
        pipe.del(self.keys.idempotency(scope, key)).ignore();
        self.query(&pipe).await
    }

    async fn unseeded(
        &self,
        buyer_id: &str,
        windows: &[CapWindow],
    ) -> anyhow::Result<Vec<CapWindow>> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for window in windows {
            pipe.exists(self.keys.window(buyer_id, window));
        }
        let exists: Vec<bool> = self.query(&pipe).await?;
        if exists.len() != windows.len() {
            bail!(
                "Redis answered {} of {} EXISTS",
                exists.len(),
                windows.len()
            );
        }
        Ok(windows
            .iter()
            .zip(exists)
            .filter(|(_, exists)| !exists)
            .map(|(window, _)| window.clone())
            .collect())
    }

    async fn seed(
        &self,
        buyer_id: &str,
        window: &CapWindow,
        count: i64,
        spend_cents: i64,
    ) -> anyhow::Result<()> {
        let mut call = self.caps_call(&self.scripts.seed, buyer_id);
        call.arg(&window.key)
            .arg(count)
            .arg(spend_cents)
            .arg(window_keep_until_ms(window));
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&call).ignore();
        self.query(&pipe).await
    }

    async fn caps_room(
        &self,
        checks: &[(&str, &[CapWindow])],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<bool>> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        // One script per buyer (each is atomic in its buyer's slot), all in one round trip.
        let calls: Vec<ScriptInvocation> = checks
            .iter()
            .map(|(buyer_id, windows)| {
                let mut call = self.caps_call(&self.scripts.caps_room, buyer_id);
                call.arg(now.timestamp_micros());
                for window in *windows {
                    call.arg(&window.key)
                        .arg(limit(window.count_max))
                        .arg(limit(window.spend_max_cents));
                }
                call
            })
            .collect();
        let mut pipe = ::redis::pipe();
        for call in &calls {
            pipe.invoke_script(call);
        }
        let room: Vec<i64> = self.query(&pipe).await?;
        if room.len() != checks.len() {
            bail!(
                "Redis answered {} of {} cap checks",
                room.len(),
                checks.len()
            );
        }
        Ok(room.into_iter().map(|r| r == 1).collect())
    }

    async fn reserve(&self, reservation: &Reservation, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let buyer_id = &reservation.buyer_id;
        let record = serde_json::json!({
            "price_cents": reservation.price_cents,
            "windows": reservation.windows.iter().map(|w| &w.key).collect::<Vec<_>>(),
        });
        let index_until = reservation.expires_at.max(Utc::now()) + RESERVATION_INDEX_GRACE;
        // The reservations live as long as the windows they count in.
        let keep_until_ms = reservation
            .windows
            .iter()
            .map(window_keep_until_ms)
            .max()
            .unwrap_or(index_until.timestamp_millis());
        let mut call = self.caps_call(&self.scripts.reserve, buyer_id);
        call.arg(now.timestamp_micros())
            .arg(&reservation.id)
            .arg(reservation.price_cents)
            .arg(reservation.expires_at.timestamp_micros())
            .arg(record.to_string())
            .arg(keep_until_ms);
        for window in &reservation.windows {
            call.arg(&window.key)
                .arg(limit(window.count_max))
                .arg(limit(window.spend_max_cents))
                .arg(window_keep_until_ms(window));
        }
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&call)
            .cmd("SET")
            .arg(self.keys.reservation_buyer(&reservation.id))
            .arg(buyer_id)
            .arg("PXAT")
            .arg(index_until.timestamp_millis())
            .ignore();
        let (outcome,): (i64,) = self.query(&pipe).await?;
        match outcome {
            1 => Ok(true),
            0 => Ok(false),
            -1 => bail!("buyer {buyer_id}: a cap window has no totals in Redis; seed it first"),
            other => bail!("unexpected reserve answer from Redis: {other}"),
        }
    }

    async fn release(&self, reservation_id: &str) -> anyhow::Result<()> {
        let index = self.keys.reservation_buyer(reservation_id);
        let mut pipe = ::redis::pipe();
        pipe.get(&index);
        let (buyer_id,): (Option<String>,) = self.query(&pipe).await?;
        // No index: never reserved here, already released or committed, or long expired.
        let Some(buyer_id) = buyer_id else {
            return Ok(());
        };
        let mut call = self.caps_call(&self.scripts.release, &buyer_id);
        call.arg(reservation_id);
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&call).ignore().del(&index).ignore();
        self.query(&pipe).await
    }

    async fn commit(&self, reservation: &Reservation) -> anyhow::Result<()> {
        let mut call = self.caps_call(&self.scripts.commit, &reservation.buyer_id);
        call.arg(&reservation.id).arg(reservation.price_cents);
        for window in &reservation.windows {
            call.arg(&window.key).arg(window_keep_until_ms(window));
        }
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&call)
            .ignore()
            .del(self.keys.reservation_buyer(&reservation.id))
            .ignore();
        self.query(&pipe).await
    }

    async fn rate_limit(
        &self,
        seller_id: &str,
        rate_per_s: u32,
        burst: u32,
    ) -> anyhow::Result<RateDecision> {
        // As in process, a zero rate or burst counts as one. Past a million a second the
        // interval stays one microsecond.
        let interval_us = (1_000_000 / u64::from(rate_per_s.max(1))).max(1);
        let mut call = self.scripts.rate_limit.prepare_invoke();
        call.key(self.keys.rate(seller_id))
            .arg(interval_us)
            .arg(burst.max(1));
        let mut pipe = ::redis::pipe();
        pipe.invoke_script(&call);
        let (wait_us,): (i64,) = self.query(&pipe).await?;
        Ok(match u64::try_from(wait_us) {
            Ok(0) => RateDecision::Allow,
            Ok(us) => RateDecision::Limited(Duration::from_micros(us)),
            Err(_) => bail!("unexpected rate limit answer from Redis: {wait_us}"),
        })
    }

    async fn check(&self) -> anyhow::Result<()> {
        RedisState::check(self).await
    }
}
