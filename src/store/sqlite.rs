//! The embedded default: the system of record in one SQLite file.

mod reports;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::*;
use crate::ledger::Transaction;

/// Bid rows per insert statement: 10 parameters each, well under SQLite's 32,766.
const BID_ROWS_PER_INSERT: usize = 1_000;
/// Ping rows per insert statement: 11 parameters each.
const PING_ROWS_PER_INSERT: usize = 1_000;

/// Readers the pool keeps: WAL lets them read while the writer writes.
const READERS_MAX: u32 = 8;

/// Two pools on one file. Every write goes through the one writer connection, so writers
/// queue in the pool (in order, without sleeping) instead of in SQLite's busy handler, which
/// polls with sleeps of up to 100 ms and made the tail of a loaded exchange. Reads run on
/// their own connections beside it.
pub struct SqliteStore {
    writer: SqlitePool,
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
            // Checkpoints stay SQLite's own: on the writer, after a commit that leaves 1,000
            // pages in the WAL. Only the writer can restart the WAL once a checkpoint has
            // caught up; checkpoints run beside a continuous writer never catch up (the WAL
            // grew to 3.4 GB in a five-minute load test that tried: load-tests/RESULTS.md).
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            // A file on this machine has no connection to lose: the pool's test before each
            // acquire would only cost one more trip to the connection's thread.
            .test_before_acquire(false)
            // 16 MiB of page cache for the writer (SQLite's default, kept by the readers, is
            // 2 MiB): the hot pages of the ping, bid and ledger tables stay in memory between
            // its transactions.
            .connect_with(options.clone().pragma("cache_size", "-16384"))
            .await
            .with_context(|| "opening the SQLite database")?;
        // An in-memory database exists once per connection: it has one pool for all.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS_MAX)
                .acquire_timeout(Duration::from_secs(5))
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .with_context(|| "opening the SQLite database")?
        };
        Ok(SqliteStore { writer, reader })
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'_, sqlx::Sqlite>> {
        // IMMEDIATE takes the write lock up front, so a transaction never fails half-way
        // on a lock upgrade; another process's writers wait up to busy_timeout.
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(classify)
    }
}

/// Several statements, run in one trip to the connection's thread: sqlx gives each statement
/// of a query text its own bound parameters, in order.
type Statements<'a> = sqlx::QueryBuilder<'a, sqlx::Sqlite>;

fn statements<'a>() -> Statements<'a> {
    sqlx::QueryBuilder::new("")
}

/// The ledger transaction's entries and header, checked for balance first.
fn push_transaction<'a>(q: &mut Statements<'a>, t: &'a Transaction) -> StoreResult<()> {
    t.check_balanced()
        .map_err(|e| StoreError::Other(e.into()))?;
    let at = micros(t.created_at);
    q.push("insert into ledger_entry (transaction_id, account, amount_cents, created_at) ");
    q.push_values(&t.entries, |mut row, entry| {
        row.push_bind(&t.id)
            .push_bind(&entry.account)
            .push_bind(entry.amount_cents)
            .push_bind(at);
    });
    q.push("; insert into ledger_transaction (id, kind, lead_id, reverses, created_at) values (");
    q.separated(", ")
        .push_bind(&t.id)
        .push_bind(t.kind.as_str())
        .push_bind(&t.lead_id)
        .push_bind(&t.reverses)
        .push_bind(at);
    q.push("); ");
    Ok(())
}

fn push_attempts<'a>(q: &mut Statements<'a>, ping_id: &'a str, attempts: &'a [PostAttempt]) {
    if attempts.is_empty() {
        return;
    }
    q.push("insert into post_attempt (ping_id, buyer_id, outcome, price_cents, reason, latency_ms, created_at) ");
    q.push_values(attempts, |mut row, a| {
        row.push_bind(ping_id)
            .push_bind(&a.buyer_id)
            .push_bind(a.outcome)
            .push_bind(a.price.cents())
            .push_bind(&a.reason)
            .push_bind(a.latency_ms)
            .push_bind(micros(a.at));
    });
    q.push("; ");
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
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
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
        sqlx::query("insert into server_secret (name, value, created_at) values ('dedupe', ?, ?) on conflict (name) do nothing")
            .bind(fresh.as_slice())
            .bind(micros(Utc::now()))
            .execute(&self.writer)
            .await
            .map_err(classify)?;
        let row = sqlx::query("select value from server_secret where name = 'dedupe'")
            .fetch_one(&self.writer)
            .await
            .map_err(classify)?;
        Ok(row.get::<Vec<u8>, _>(0))
    }

    async fn insert_pings(&self, pings: &[NewPing]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // Many pings and their whole bid logs in a few multi-row statements: one commit and a
        // handful of trips to the connection's thread for the batch.
        for chunk in pings.chunks(PING_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "insert into ping (id, seller_id, vertical, sub_id, lead_json, status, price_cents, payout_cents, expires_at, created_at, post_state) ",
            );
            insert.push_values(chunk, |mut row, ping| {
                row.push_bind(&ping.id)
                    .push_bind(&ping.seller_id)
                    .push_bind(&ping.vertical)
                    .push_bind(&ping.sub_id)
                    .push_bind(&ping.lead_json)
                    .push_bind(ping.status.as_str())
                    .push_bind(ping.price.map(|m| m.cents()))
                    .push_bind(ping.payout.map(|m| m.cents()))
                    .push_bind(ping.expires_at.map(micros))
                    .push_bind(micros(ping.created_at))
                    .push_bind(if ping.status == PingStatus::Offer {
                        "open"
                    } else {
                        "done"
                    });
            });
            insert.build().execute(&mut *tx).await.map_err(classify)?;
        }
        let bids: Vec<(&NewPing, &BidRecord)> = pings
            .iter()
            .flat_map(|ping| ping.bids.iter().map(move |bid| (ping, bid)))
            .collect();
        for chunk in bids.chunks(BID_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "insert into bid (ping_id, buyer_id, outcome, price_cents, floor_cents, bid_id, reason, latency_ms, rank, created_at) ",
            );
            insert.push_values(chunk, |mut row, (ping, b)| {
                row.push_bind(&ping.id)
                    .push_bind(&b.buyer_id)
                    .push_bind(b.outcome)
                    .push_bind(b.price.map(|m| m.cents()))
                    .push_bind(b.floor.cents())
                    .push_bind(&b.bid_id)
                    .push_bind(&b.reason)
                    .push_bind(b.latency_ms)
                    .push_bind(b.rank)
                    .push_bind(micros(ping.created_at));
            });
            insert.build().execute(&mut *tx).await.map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
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
        // The ping's columns on every row of its ranked bids (or once, with none).
        let rows = sqlx::query("select p.id, p.seller_id, p.vertical, p.lead_json, p.status, p.payout_cents, p.expires_at, p.lead_id, b.buyer_id, b.price_cents, b.bid_id from ping p left join bid b on b.ping_id = p.id and b.rank is not null where p.id = ? order by b.rank")
            .bind(id)
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let ping = ping_row(first)?;
        let bids = rows
            .iter()
            .filter_map(|r| {
                let buyer_id: Option<String> = r.get("buyer_id");
                Some(RankedBid {
                    buyer_id: buyer_id?,
                    price: Money::from_cents(r.get("price_cents")),
                    bid_id: r.get("bid_id"),
                })
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
        let claimed = sqlx::query("update ping set post_state = 'posting', post_body_hash = ?, post_lease_until = ? where id = ? and status = 'offer' and (post_state = 'open' or (post_state = 'posting' and post_lease_until < ?))")
            .bind(body_hash)
            .bind(micros(lease_until))
            .bind(ping_id)
            .bind(micros(now))
            .execute(&self.writer)
            .await
            .map_err(classify)?
            .rows_affected();
        if claimed == 1 {
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
        sqlx::query("update ping set post_state = 'open', post_body_hash = null, post_lease_until = null where id = ? and post_state = 'posting'")
            .bind(ping_id)
            .execute(&self.writer)
            .await
            .map_err(classify)?;
        Ok(())
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
        let mut q = statements();
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
        // IMMEDIATE holds the write lock, so the cap check below and the insert are one step.
        let mut tx = self.begin().await?;
        for window in &sale.cap_windows {
            let row = sqlx::query("select count(*), coalesce(sum(price_cents), 0) from sale where buyer_id = ? and created_at >= ? and created_at < ?")
                .bind(&sale.buyer_id)
                .bind(micros(window.start))
                .bind(micros(window.end))
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
            let (count, spend): (i64, i64) = (row.get(0), row.get(1));
            let over_count = window.count_max.is_some_and(|max| count + 1 > max as i64);
            let over_spend = window
                .spend_max_cents
                .is_some_and(|max| spend + sale.price.cents() > max);
            if over_count || over_spend {
                return Err(StoreError::CapExceeded);
            }
        }
        // The ping first: it is still an offer, or the sale is refused whole.
        let updated = sqlx::query("update ping set status = 'sold', post_state = 'done', post_result = ?, lead_id = ? where id = ? and status = 'offer'")
            .bind(&sale.result_json)
            .bind(&sale.lead_id)
            .bind(&sale.ping_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?
            .rows_affected();
        if updated != 1 {
            return Err(StoreError::Conflict(
                "the ping is no longer open for a sale".into(),
            ));
        }
        // Everything else of the sale in one trip.
        let at = micros(sale.transaction.created_at);
        let mut q = statements();
        push_transaction(&mut q, &sale.transaction)?;
        q.push("insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price_cents, payout_cents, buyer_lead_id, transaction_id, created_at) values (");
        q.separated(", ")
            .push_bind(&sale.lead_id)
            .push_bind(&sale.ping_id)
            .push_bind(&sale.buyer_id)
            .push_bind(&sale.seller_id)
            .push_bind(&sale.vertical)
            .push_bind(sale.price.cents())
            .push_bind(sale.payout.cents())
            .push_bind(&sale.buyer_lead_id)
            .push_bind(&sale.transaction.id)
            .push_bind(at);
        q.push("); ");
        if !sale.dedupe_keys.is_empty() {
            q.push("insert into dedupe_key (buyer_id, key_hash, created_at) ");
            q.push_values(&sale.dedupe_keys, |mut row, key| {
                row.push_bind(&sale.buyer_id).push_bind(key).push_bind(at);
            });
            q.push("; ");
        }
        push_attempts(&mut q, &sale.ping_id, attempts);
        let sums = RevenueSums::of_transaction(&sale.transaction);
        reports::push_rollup(
            &mut q,
            &sale.transaction,
            sums,
            rollup_keys(&sale.buyer_id, &sale.seller_id, &sale.vertical),
        );
        q.build().execute(&mut *tx).await.map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn record_unsold(
        &self,
        ping_id: &str,
        result_json: &str,
        attempts: &[PostAttempt],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let mut q = statements();
        push_attempts(&mut q, ping_id, attempts);
        q.push("update ping set status = 'unsold', post_state = 'done', post_result = ");
        q.push_bind(result_json);
        q.push(" where id = ");
        q.push_bind(ping_id);
        q.push(" and status = 'offer'");
        q.build().execute(&mut *tx).await.map_err(classify)?;
        tx.commit().await.map_err(classify)
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
        let mut tx = self.begin().await?;
        // The return row first: its primary key makes a second return a conflict at once.
        sqlx::query("insert into lead_return (lead_id, buyer_id, reason, transaction_id, created_at) values (?, ?, ?, ?, ?)")
            .bind(&ret.lead_id)
            .bind(&ret.buyer_id)
            .bind(&ret.reason)
            .bind(&ret.transaction.id)
            .bind(micros(ret.transaction.created_at))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        let (buyer_id, seller_id, vertical) = reports::sale_keys(&mut tx, &ret.lead_id).await?;
        let mut q = statements();
        push_transaction(&mut q, &ret.transaction)?;
        let sums = RevenueSums::of_transaction(&ret.transaction);
        reports::push_rollup(
            &mut q,
            &ret.transaction,
            sums,
            rollup_keys(&buyer_id, &seller_id, &vertical),
        );
        q.build().execute(&mut *tx).await.map_err(classify)?;
        tx.commit().await.map_err(classify)
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
        reports::rebuild_rollup(&self.writer).await
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
