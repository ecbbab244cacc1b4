//! The embedded default: the system of record in one SQLite file.

mod reports;
mod writer;

#[cfg(test)]
mod schema_tests;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::*;

/// Readers the pool keeps: WAL lets them read while the writer writes.
const READERS_MAX: u32 = 8;

/// The readers' pool and the one writer on one file. Every write goes through the writer's
/// thread, one transaction per job and in order (`writer.rs`), instead of through SQLite's
/// busy handler, which polls with sleeps of up to 100 ms and made the tail of a loaded
/// exchange. Reads run on the pool's connections beside it (WAL).
pub struct SqliteStore {
    writer: writer::Writer,
    reader: SqlitePool,
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn money(cents: Option<i64>) -> Option<Money> {
    cents.map(Money::from_cents)
}

/// Sorts a database error into what the caller can act on.
pub(super) fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        // SQLITE_CANTOPEN: the file cannot be opened now (out of descriptors, disk gone).
        sqlx::Error::Database(db) if db.code().as_deref() == Some("14") => {
            StoreError::Unavailable(error.into())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(error.into()),
        _ => StoreError::Other(error.into()),
    }
}

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| "parsing the SQLite database_url")?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses nothing when the process dies (kill -9); only a power
            // cut can take the last commits, which FULL would keep at an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            // Checkpoints: a thread of the writer's copies the WAL into the database file
            // beside it, and the writer copies the last few pages itself so that the WAL
            // starts over (`writer::checkpoints`). Readers never checkpoint.
            .busy_timeout(BUSY_TIMEOUT);
        // The writer is a second connection to the same file: an in-memory database would be
        // another database on each connection.
        if url.contains(":memory:") || url.contains("mode=memory") {
            anyhow::bail!(
                "an in-memory SQLite database is not supported: name a file in database_url"
            );
        }
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS_MAX)
            .acquire_timeout(Duration::from_secs(5))
            // A file on this machine has no connection to lose: the pool's test before each
            // acquire would only cost one more trip to the connection's thread.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .with_context(|| "opening the SQLite database")?;
        let writer = writer::Writer::open(options.get_filename(), BUSY_TIMEOUT)
            .with_context(|| "opening the SQLite database for writing")?;
        Ok(SqliteStore { writer, reader })
    }
}

fn ping_row(r: &sqlx::sqlite::SqliteRow) -> StoreResult<PingRow> {
    let status: String = r.get("status");
    Ok(PingRow {
        id: r.get("id"),
        seller_id: r.get("seller_id"),
        vertical: r.get("vertical"),
        lead_json: r.get("lead_json"),
        status: PingStatus::parse(&status).ok_or_else(|| anyhow::anyhow!("unknown ping status"))?,
        payout: money(r.get("payout_cents")),
        expires_at: r.get::<Option<i64>, _>("expires_at").map(time),
        lead_id: r.get("lead_id"),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        // On a reader connection: migrations run at start-up, before any write, and the
        // writer's thread has statements of its own to prepare, not sqlx's migrator.
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.reader)
            .await
            .map_err(|e| {
                StoreError::Other(anyhow::Error::new(e).context("applying SQLite migrations"))
            })
    }

    async fn check(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.reader)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn server_secret(&self) -> StoreResult<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        let now = micros(Utc::now());
        self.writer
            .transaction(move |tx| writer::server_secret(tx, &fresh, now))
            .await
    }

    async fn insert_pings(&self, pings: &[NewPing]) -> StoreResult<()> {
        // Many pings and their whole bid logs, in one transaction and one job.
        let pings = pings.to_vec();
        self.writer
            .transaction(move |tx| writer::insert_pings(tx, &pings))
            .await
    }

    async fn log_ping(&self, ping: NewPing) -> StoreResult<()> {
        self.writer.log_ping(ping).await
    }

    fn runs_writes_itself(&self) -> bool {
        true
    }

    async fn get_ping(&self, id: &str) -> StoreResult<Option<PingRow>> {
        let row = sqlx::query("select id, seller_id, vertical, lead_json, status, payout_cents, expires_at, lead_id from ping where id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        row.as_ref().map(ping_row).transpose()
    }

    async fn get_offer(&self, id: &str) -> StoreResult<Option<(PingRow, Vec<RankedBid>)>> {
        // One row: the ping, and its ranked bids best first as one JSON array of
        // [buyer_id, price_cents, bid_id]. A join repeated the ping's columns (its lead among
        // them) on every bid's row, and 100 bidders made 100 rows to decode.
        let Some(row) = sqlx::query("select id, seller_id, vertical, lead_json, status, payout_cents, expires_at, lead_id, (select json_group_array(json_array(b.buyer_id, b.price_cents, b.bid_id) order by b.rank) from bid b where b.ping_id = ping.id and b.rank is not null) as bids from ping where id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let ping = ping_row(&row)?;
        let ranked: Vec<(String, i64, Option<String>)> =
            serde_json::from_str(row.get::<&str, _>("bids")).map_err(|e| {
                StoreError::Other(anyhow::Error::new(e).context("reading ranked bids"))
            })?;
        let bids = ranked
            .into_iter()
            .map(|(buyer_id, cents, bid_id)| RankedBid {
                buyer_id,
                price: Money::from_cents(cents),
                bid_id,
            })
            .collect();
        Ok(Some((ping, bids)))
    }

    async fn claim_post(
        &self,
        ping_id: &str,
        body_hash: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        let (ping, hash) = (ping_id.to_string(), body_hash.to_string());
        let (now, lease_until) = (micros(now), micros(lease_until));
        let claimed = self
            .writer
            .transaction(move |tx| writer::claim_post(tx, &ping, &hash, now, lease_until))
            .await?;
        if claimed {
            return Ok(Claim::Claimed);
        }
        match self.post_state(ping_id).await? {
            PostState::Done {
                body_hash,
                result_json,
            } => Ok(Claim::Done {
                body_hash,
                result_json,
            }),
            PostState::Busy { body_hash } => Ok(Claim::Busy { body_hash }),
            // Open but not claimable: the ping is not an offer (no bid), or it was just released.
            PostState::Open => Ok(Claim::Busy {
                body_hash: String::new(),
            }),
        }
    }

    async fn post_state(&self, ping_id: &str) -> StoreResult<PostState> {
        let row =
            sqlx::query("select post_state, post_body_hash, post_result from ping where id = ?")
                .bind(ping_id)
                .fetch_optional(&self.reader)
                .await
                .map_err(classify)?;
        let Some(row) = row else {
            return Ok(PostState::Open);
        };
        let state: String = row.get("post_state");
        let body_hash: String = row
            .get::<Option<String>, _>("post_body_hash")
            .unwrap_or_default();
        Ok(
            match (state.as_str(), row.get::<Option<String>, _>("post_result")) {
                ("done", Some(result_json)) => PostState::Done {
                    body_hash,
                    result_json,
                },
                ("posting", _) => PostState::Busy { body_hash },
                _ => PostState::Open,
            },
        )
    }

    async fn release_claim(&self, ping_id: &str) -> StoreResult<()> {
        let ping = ping_id.to_string();
        self.writer
            .transaction(move |tx| writer::release_claim(tx, &ping))
            .await
    }

    async fn dedupe_hit(
        &self,
        buyer_id: &str,
        keys: &[String],
        since: DateTime<Utc>,
    ) -> StoreResult<bool> {
        if keys.is_empty() {
            return Ok(false);
        }
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
        q.push("select 1 from dedupe_key where buyer_id = ");
        q.push_bind(buyer_id);
        q.push(" and created_at >= ");
        q.push_bind(micros(since));
        q.push(" and key_hash in (");
        let mut list = q.separated(", ");
        for key in keys {
            list.push_bind(key);
        }
        q.push(") limit 1");
        let hit = q
            .build()
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        Ok(hit.is_some())
    }

    async fn buyer_totals(
        &self,
        buyer_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<(i64, i64)> {
        let row = sqlx::query("select count(*), coalesce(sum(price_cents), 0) from sale where buyer_id = ? and created_at >= ? and created_at < ?")
            .bind(buyer_id)
            .bind(micros(start))
            .bind(micros(end))
            .fetch_one(&self.reader)
            .await
            .map_err(classify)?;
        Ok((row.get(0), row.get(1)))
    }

    async fn record_sale(&self, sale: &NewSale, attempts: &[PostAttempt]) -> StoreResult<()> {
        let (sale, attempts) = (sale.clone(), attempts.to_vec());
        self.writer
            .transaction(move |tx| writer::record_sale(tx, &sale, &attempts))
            .await
    }

    async fn record_unsold(
        &self,
        ping_id: &str,
        result_json: &str,
        attempts: &[PostAttempt],
    ) -> StoreResult<()> {
        let (ping, result, attempts) = (
            ping_id.to_string(),
            result_json.to_string(),
            attempts.to_vec(),
        );
        self.writer
            .transaction(move |tx| writer::record_unsold(tx, &ping, &result, &attempts))
            .await
    }

    async fn get_sale(&self, lead_id: &str) -> StoreResult<Option<SaleRow>> {
        let Some(row) = sqlx::query("select lead_id, buyer_id, seller_id, price_cents, transaction_id, created_at from sale where lead_id = ?")
            .bind(lead_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?
        else {
            return Ok(None);
        };
        let transaction_id: String = row.get("transaction_id");
        let entries = sqlx::query(
            "select account, amount_cents from ledger_entry where transaction_id = ? order by id",
        )
        .bind(&transaction_id)
        .fetch_all(&self.reader)
        .await
        .map_err(classify)?
        .into_iter()
        .map(|r| Entry {
            account: r.get("account"),
            amount_cents: r.get("amount_cents"),
        })
        .collect();
        Ok(Some(SaleRow {
            lead_id: row.get("lead_id"),
            buyer_id: row.get("buyer_id"),
            seller_id: row.get("seller_id"),
            price: Money::from_cents(row.get("price_cents")),
            transaction_id,
            entries,
            created_at: time(row.get("created_at")),
        }))
    }

    async fn record_return(&self, ret: &NewReturn) -> StoreResult<()> {
        let ret = ret.clone();
        self.writer
            .transaction(move |tx| writer::record_return(tx, &ret))
            .await
    }

    async fn account_entries(
        &self,
        account: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<EntryRow>> {
        let rows = sqlx::query("select t.id, t.created_at, t.kind, e.account, e.amount_cents, t.lead_id from ledger_entry e join ledger_transaction t on t.id = e.transaction_id where e.account = ? and e.created_at >= ? and e.created_at < ? order by e.created_at, e.id")
            .bind(account)
            .bind(micros(from))
            .bind(micros(to))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|r| {
                let kind: String = r.get(2);
                Ok(EntryRow {
                    transaction_id: r.get(0),
                    time: time(r.get(1)),
                    kind: TransactionKind::parse(&kind)
                        .ok_or_else(|| anyhow::anyhow!("unknown transaction kind"))?,
                    account: r.get(3),
                    amount_cents: r.get(4),
                    lead_id: r.get(5),
                })
            })
            .collect()
    }

    async fn revenue(&self, query: &RevenueQuery) -> StoreResult<Vec<RevenueCell>> {
        reports::revenue(&self.reader, query).await
    }

    async fn rebuild_revenue_rollup(&self) -> StoreResult<()> {
        self.writer.run(reports::rebuild_rollup).await
    }

    async fn compact_revenue_rollup(&self, _before: DateTime<Utc>) -> StoreResult<u64> {
        Ok(0)
    }

    async fn ledger_page(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        after: Option<LedgerCursor>,
        limit: i64,
    ) -> StoreResult<Vec<LedgerRow>> {
        reports::ledger_page(&self.reader, start, end, after, limit).await
    }

    async fn auction_counts(
        &self,
        dimension: AuctionDimension,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<Vec<AuctionCell>> {
        reports::auction_counts(&self.reader, dimension, start, end).await
    }
}
