//! The shared system of record: PostgreSQL, for one or several exchange nodes.

mod reports;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Row};

use super::*;
use crate::ledger::Transaction;

/// Bid rows per insert statement: 10 parameters each, well under PostgreSQL's 65,535.
const BID_ROWS_PER_INSERT: usize = 1_000;
/// Ping rows per insert statement: 11 parameters each.
const PING_ROWS_PER_INSERT: usize = 1_000;

pub struct PgStore {
    pool: PgPool,
}

/// Sorts a database error into what the caller can act on.
fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|code| server_unavailable(&code)) => {
            StoreError::Unavailable(error.into())
        }
        // A refused connection is retried inside the pool until the acquire timeout, which
        // then surfaces as PoolTimedOut.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(error.into()),
        _ => StoreError::Other(error.into()),
    }
}

/// SQLSTATEs that say the server cannot serve now, not that the request was wrong: class 08
/// (connection exception), a server shutting down or starting up, too many connections.
fn server_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

fn to_money(value: Decimal) -> StoreResult<Money> {
    Money::from_decimal(value)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("stored amount {value} {e}")))
}

fn to_money_opt(value: Option<Decimal>) -> StoreResult<Option<Money>> {
    value.map(to_money).transpose()
}

/// Ledger amounts are signed cents in Rust and numeric(14,2) in the database.
fn cents_to_numeric(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

fn numeric_to_cents(value: Decimal) -> StoreResult<i64> {
    let cents = value * Decimal::ONE_HUNDRED;
    if !cents.fract().is_zero() {
        return Err(StoreError::Other(anyhow::anyhow!(
            "stored amount {value} is not a whole number of cents"
        )));
    }
    i64::try_from(cents)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("stored amount {value}: {e}")))
}

impl PgStore {
    /// Builds the pool without connecting, so the server starts while PostgreSQL is down and
    /// each request reports `Unavailable` until it is back. Async because the pool spawns its
    /// maintenance task on the runtime.
    pub async fn connect(
        url: &str,
        pool_max: u32,
        acquire_timeout: Duration,
    ) -> anyhow::Result<PgStore> {
        let options =
            PgConnectOptions::from_str(url).context("parsing the PostgreSQL database_url")?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_max)
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(options);
        Ok(PgStore { pool })
    }
}

/// Entries first, header last, as the schema expects: see migrations/postgres.
async fn insert_transaction(tx: &mut PgConnection, t: &Transaction) -> StoreResult<()> {
    t.check_balanced()
        .map_err(|e| StoreError::Other(e.into()))?;
    // Every entry in one statement.
    let mut entries = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "insert into ledger_entry (transaction_id, account, amount, created_at) ",
    );
    entries.push_values(&t.entries, |mut row, entry| {
        row.push_bind(&t.id)
            .push_bind(&entry.account)
            .push_bind(cents_to_numeric(entry.amount_cents))
            .push_bind(t.created_at);
    });
    entries.build().execute(&mut *tx).await.map_err(classify)?;
    sqlx::query(
        "insert into ledger_transaction (id, kind, lead_id, reverses, created_at) \
         values ($1, $2, $3, $4, $5)",
    )
    .bind(&t.id)
    .bind(t.kind.as_str())
    .bind(&t.lead_id)
    .bind(&t.reverses)
    .bind(t.created_at)
    .execute(&mut *tx)
    .await
    .map_err(classify)?;
    Ok(())
}

async fn insert_attempts(
    tx: &mut PgConnection,
    ping_id: &str,
    attempts: &[PostAttempt],
) -> StoreResult<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "insert into post_attempt (ping_id, buyer_id, outcome, price, reason, latency_ms, created_at) ",
    );
    insert.push_values(attempts, |mut row, a| {
        row.push_bind(ping_id)
            .push_bind(&a.buyer_id)
            .push_bind(a.outcome)
            .push_bind(a.price.decimal())
            .push_bind(&a.reason)
            .push_bind(a.latency_ms)
            .push_bind(a.at);
    });
    insert.build().execute(&mut *tx).await.map_err(classify)?;
    Ok(())
}

/// `insert into ping … values …` for these pings (11 parameters a row).
fn push_ping_rows<'a>(insert: &mut sqlx::QueryBuilder<'a, sqlx::Postgres>, pings: &'a [NewPing]) {
    insert.push(
        "insert into ping (id, seller_id, vertical, sub_id, lead_json, status, price, \
         payout, expires_at, created_at, post_state) ",
    );
    insert.push_values(pings, |mut row, ping| {
        row.push_bind(&ping.id)
            .push_bind(&ping.seller_id)
            .push_bind(&ping.vertical)
            .push_bind(&ping.sub_id)
            .push_bind(&ping.lead_json)
            .push_bind(ping.status.as_str())
            .push_bind(ping.price.map(|m| m.decimal()))
            .push_bind(ping.payout.map(|m| m.decimal()))
            .push_bind(ping.expires_at)
            .push_bind(ping.created_at)
            .push_bind(if ping.status == PingStatus::Offer {
                "open"
            } else {
                "done"
            });
    });
}

/// `insert into bid … values …` for these bids of their pings (10 parameters a row).
fn push_bid_rows<'a>(
    insert: &mut sqlx::QueryBuilder<'a, sqlx::Postgres>,
    bids: &[(&'a NewPing, &'a BidRecord)],
) {
    insert.push(
        "insert into bid (ping_id, buyer_id, outcome, price, floor, bid_id, reason, \
         latency_ms, rank, created_at) ",
    );
    insert.push_values(bids, |mut row, (ping, b)| {
        row.push_bind(&ping.id)
            .push_bind(&b.buyer_id)
            .push_bind(b.outcome)
            .push_bind(b.price.map(|m| m.decimal()))
            .push_bind(b.floor.decimal())
            .push_bind(&b.bid_id)
            .push_bind(&b.reason)
            .push_bind(b.latency_ms)
            .push_bind(b.rank)
            .push_bind(ping.created_at);
    });
}

fn ping_row(r: &sqlx::postgres::PgRow) -> StoreResult<PingRow> {
    let status: String = r.get("status");
    Ok(PingRow {
        id: r.get("id"),
        seller_id: r.get("seller_id"),
        vertical: r.get("vertical"),
        lead_json: r.get("lead_json"),
        status: PingStatus::parse(&status).ok_or_else(|| anyhow::anyhow!("unknown ping status"))?,
        payout: to_money_opt(r.get("payout"))?,
        expires_at: r.get("expires_at"),
        lead_id: r.get("lead_id"),
    })
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(inner) => classify(inner),
                other => StoreError::Other(
                    anyhow::Error::new(other).context("applying PostgreSQL migrations"),
                ),
            })
    }

    async fn check(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn server_secret(&self) -> StoreResult<Vec<u8>> {
        let fresh: [u8; 32] = rand::random();
        sqlx::query(
            "insert into server_secret (name, value, created_at) values ('dedupe', $1, $2) \
             on conflict (name) do nothing",
        )
        .bind(fresh.as_slice())
        .bind(Utc::now())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        let row = sqlx::query("select value from server_secret where name = 'dedupe'")
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(row.get::<Vec<u8>, _>(0))
    }

    async fn insert_pings(&self, pings: &[NewPing]) -> StoreResult<()> {
        let bids: Vec<(&NewPing, &BidRecord)> = pings
            .iter()
            .flat_map(|ping| ping.bids.iter().map(move |bid| (ping, bid)))
            .collect();
        // A batch that fits one statement is one statement, in autocommit: the ping rows in a
        // data-modifying `with`, the bid rows in its main insert. One round trip instead of
        // four (begin, pings, bids, commit), each a wake of a PostgreSQL backend on cores the
        // exchange shares. The bids' references to their pings are checked at the end of the
        // statement, when the ping rows are there.
        if pings.len() <= PING_ROWS_PER_INSERT && bids.len() <= BID_ROWS_PER_INSERT {
            let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
            if bids.is_empty() {
                push_ping_rows(&mut insert, pings);
            } else {
                insert.push("with p as (");
                push_ping_rows(&mut insert, pings);
                insert.push(") ");
                push_bid_rows(&mut insert, &bids);
            }
            insert.build().execute(&self.pool).await.map_err(classify)?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // Many pings and their whole bid logs in a few multi-row statements: one commit and a
        // handful of round trips for the batch, instead of some per ping and one per buyer.
        for chunk in pings.chunks(PING_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
            push_ping_rows(&mut insert, chunk);
            insert.build().execute(&mut *tx).await.map_err(classify)?;
        }
        for chunk in bids.chunks(BID_ROWS_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
            push_bid_rows(&mut insert, chunk);
            insert.build().execute(&mut *tx).await.map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn get_ping(&self, id: &str) -> StoreResult<Option<PingRow>> {
        let row = sqlx::query(
            "select id, seller_id, vertical, lead_json, status, payout, expires_at, lead_id \
             from ping where id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?;
        row.as_ref().map(ping_row).transpose()
    }

    async fn get_offer(&self, id: &str) -> StoreResult<Option<(PingRow, Vec<RankedBid>)>> {
        // The ping's columns on every row of its ranked bids (or once, with none).
        let rows = sqlx::query(
            "select p.id, p.seller_id, p.vertical, p.lead_json, p.status, p.payout, \
             p.expires_at, p.lead_id, b.buyer_id, b.price, b.bid_id from ping p \
             left join bid b on b.ping_id = p.id and b.rank is not null \
             where p.id = $1 order by b.rank",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let ping = ping_row(first)?;
        let mut bids = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(buyer_id) = r.get::<Option<String>, _>("buyer_id") {
                bids.push(RankedBid {
                    buyer_id,
                    price: to_money(r.get("price"))?,
                    bid_id: r.get("bid_id"),
                });
            }
        }
        Ok(Some((ping, bids)))
    }

    async fn claim_post(
        &self,
        ping_id: &str,
        body_hash: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        // One statement: under concurrent claims PostgreSQL re-checks the condition on the row
        // the winner wrote, so exactly one of them takes it.
        let claimed = sqlx::query(
            "update ping set post_state = 'posting', post_body_hash = $1, post_lease_until = $2 \
             where id = $3 and status = 'offer' \
             and (post_state = 'open' or (post_state = 'posting' and post_lease_until < $4))",
        )
        .bind(body_hash)
        .bind(lease_until)
        .bind(ping_id)
        .bind(now)
        .execute(&self.pool)
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
            sqlx::query("select post_state, post_body_hash, post_result from ping where id = $1")
                .bind(ping_id)
                .fetch_optional(&self.pool)
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

    async fn buyer_totals(
        &self,
        buyer_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<(i64, i64)> {
        let row = sqlx::query("select count(*), coalesce(sum(price), 0) from sale where buyer_id = $1 and created_at >= $2 and created_at < $3")
            .bind(buyer_id)
            .bind(start)
            .bind(end)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        let spend: rust_decimal::Decimal = row.get(1);
        Ok((row.get(0), numeric_to_cents(spend)?))
    }

    async fn release_claim(&self, ping_id: &str) -> StoreResult<()> {
        sqlx::query(
            "update ping set post_state = 'open', post_body_hash = null, post_lease_until = null \
             where id = $1 and post_state = 'posting'",
        )
        .bind(ping_id)
        .execute(&self.pool)
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
        let row = sqlx::query(
            "select exists (select 1 from dedupe_key \
             where buyer_id = $1 and key_hash = any($2) and created_at >= $3)",
        )
        .bind(buyer_id)
        .bind(keys)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(row.get::<bool, _>(0))
    }

    async fn record_sale(&self, sale: &NewSale, attempts: &[PostAttempt]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        if !sale.cap_windows.is_empty() {
            // One sale at a time per buyer, so the cap check and the insert are one step
            // across every node sharing this database.
            sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(format!("caps:{}", sale.buyer_id))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        for window in &sale.cap_windows {
            let row = sqlx::query("select count(*), coalesce(sum(price), 0) from sale where buyer_id = $1 and created_at >= $2 and created_at < $3")
                .bind(&sale.buyer_id)
                .bind(window.start)
                .bind(window.end)
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
            let count: i64 = row.get(0);
            let spend = numeric_to_cents(row.get(1))?;
            let over_count = window.count_max.is_some_and(|max| count + 1 > max as i64);
            let over_spend = window
                .spend_max_cents
                .is_some_and(|max| spend + sale.price.cents() > max);
            if over_count || over_spend {
                return Err(StoreError::CapExceeded);
            }
        }
        let at = sale.transaction.created_at;
        insert_transaction(&mut tx, &sale.transaction).await?;
        sqlx::query(
            "insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price, payout, \
             buyer_lead_id, transaction_id, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&sale.lead_id)
        .bind(&sale.ping_id)
        .bind(&sale.buyer_id)
        .bind(&sale.seller_id)
        .bind(&sale.vertical)
        .bind(sale.price.decimal())
        .bind(sale.payout.decimal())
        .bind(&sale.buyer_lead_id)
        .bind(&sale.transaction.id)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        if !sale.dedupe_keys.is_empty() {
            let mut keys = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "insert into dedupe_key (buyer_id, key_hash, created_at) ",
            );
            keys.push_values(&sale.dedupe_keys, |mut row, key| {
                row.push_bind(&sale.buyer_id).push_bind(key).push_bind(at);
            });
            keys.build().execute(&mut *tx).await.map_err(classify)?;
        }
        insert_attempts(&mut tx, &sale.ping_id, attempts).await?;
        let updated = sqlx::query(
            "update ping set status = 'sold', post_state = 'done', post_result = $1, lead_id = $2 \
             where id = $3 and status = 'offer'",
        )
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
        reports::add_to_rollup(
            &mut tx,
            &sale.transaction,
            &sale.buyer_id,
            &sale.seller_id,
            &sale.vertical,
        )
        .await?;
        tx.commit().await.map_err(classify)
    }

    async fn record_unsold(
        &self,
        ping_id: &str,
        result_json: &str,
        attempts: &[PostAttempt],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        insert_attempts(&mut tx, ping_id, attempts).await?;
        sqlx::query(
            "update ping set status = 'unsold', post_state = 'done', post_result = $1 \
             where id = $2 and status = 'offer'",
        )
        .bind(result_json)
        .bind(ping_id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)
    }

    async fn get_sale(&self, lead_id: &str) -> StoreResult<Option<SaleRow>> {
        let Some(row) = sqlx::query(
            "select lead_id, buyer_id, seller_id, price, transaction_id, created_at \
             from sale where lead_id = $1",
        )
        .bind(lead_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(classify)?
        else {
            return Ok(None);
        };
        let transaction_id: String = row.get("transaction_id");
        let entries = sqlx::query(
            "select account, amount from ledger_entry where transaction_id = $1 order by id",
        )
        .bind(&transaction_id)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?
        .into_iter()
        .map(|r| {
            Ok(Entry {
                account: r.get("account"),
                amount_cents: numeric_to_cents(r.get("amount"))?,
            })
        })
        .collect::<StoreResult<Vec<Entry>>>()?;
        Ok(Some(SaleRow {
            lead_id: row.get("lead_id"),
            buyer_id: row.get("buyer_id"),
            seller_id: row.get("seller_id"),
            price: to_money(row.get("price"))?,
            transaction_id,
            entries,
            created_at: row.get("created_at"),
        }))
    }

    async fn record_return(&self, ret: &NewReturn) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // The return row first: its primary key makes a second return a conflict at once.
        sqlx::query(
            "insert into lead_return (lead_id, buyer_id, reason, transaction_id, created_at) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(&ret.lead_id)
        .bind(&ret.buyer_id)
        .bind(&ret.reason)
        .bind(&ret.transaction.id)
        .bind(ret.transaction.created_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        insert_transaction(&mut tx, &ret.transaction).await?;
        let (buyer_id, seller_id, vertical) = reports::sale_keys(&mut tx, &ret.lead_id).await?;
        reports::add_to_rollup(&mut tx, &ret.transaction, &buyer_id, &seller_id, &vertical).await?;
        tx.commit().await.map_err(classify)
    }

    async fn account_entries(
        &self,
        account: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<EntryRow>> {
        let rows = sqlx::query(
            "select t.id, t.created_at, t.kind, e.account, e.amount, t.lead_id \
             from ledger_entry e join ledger_transaction t on t.id = e.transaction_id \
             where e.account = $1 and e.created_at >= $2 and e.created_at < $3 \
             order by e.created_at, e.id",
        )
        .bind(account)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        rows.into_iter()
            .map(|r| {
                let kind: String = r.get(2);
                Ok(EntryRow {
                    transaction_id: r.get(0),
                    time: r.get(1),
                    kind: TransactionKind::parse(&kind)
                        .ok_or_else(|| anyhow::anyhow!("unknown transaction kind"))?,
                    account: r.get(3),
                    amount_cents: numeric_to_cents(r.get(4))?,
                    lead_id: r.get(5),
                })
            })
            .collect()
    }

    async fn revenue(&self, query: &RevenueQuery) -> StoreResult<Vec<RevenueCell>> {
        reports::revenue(&self.pool, query).await
    }

    async fn rebuild_revenue_rollup(&self) -> StoreResult<()> {
        reports::rebuild_rollup(&self.pool).await
    }

    async fn compact_revenue_rollup(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        reports::compact_rollup(&self.pool, before).await
    }

    async fn ledger_page(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        after: Option<LedgerCursor>,
        limit: i64,
    ) -> StoreResult<Vec<LedgerRow>> {
        reports::ledger_page(&self.pool, start, end, after, limit).await
    }

    async fn auction_counts(
        &self,
        dimension: AuctionDimension,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<Vec<AuctionCell>> {
        reports::auction_counts(&self.pool, dimension, start, end).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_amounts_convert_exactly_both_ways() {
        for cents in [
            0,
            1,
            -1,
            99,
            -1_499,
            1_000_000,
            999_999_999_999,
            -999_999_999_999,
        ] {
            assert_eq!(numeric_to_cents(cents_to_numeric(cents)).unwrap(), cents);
        }
        // As PostgreSQL hands numeric(14,2) back: with its two-decimal scale.
        assert_eq!(
            numeric_to_cents(Decimal::from_str("-14.90").unwrap()).unwrap(),
            -1_490
        );
        assert_eq!(
            numeric_to_cents(Decimal::from_str("3").unwrap()).unwrap(),
            300
        );
        assert!(numeric_to_cents(Decimal::from_str("0.005").unwrap()).is_err());
    }

    #[test]
    fn a_server_that_cannot_serve_now_is_unavailable_not_a_bad_request() {
        assert!(server_unavailable("08006"));
        assert!(server_unavailable("57P01"));
        assert!(server_unavailable("53300"));
        assert!(!server_unavailable("23505"));
        assert!(!server_unavailable("23514"));
        assert!(matches!(
            classify(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
    }
}
