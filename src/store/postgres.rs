//! The shared system of record: PostgreSQL, for one or several exchange nodes.

mod reports;
mod sales;

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

/// A pooled connection idle at least this long is pinged before it is handed out.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

pub struct PgStore {
    pool: PgPool,
    /// Uncapped sales go through here, to share statements with their neighbours in time.
    sales: sales::SaleWriter,
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
            // sqlx pings every connection it hands out, and again every one given back: two
            // round trips around each use, on a pool whose uses are one statement each. The
            // ping on the way back stays (sqlx always makes it), so a connection that came
            // back in the last second is known good; one idle longer is pinged, so one that
            // PostgreSQL closed while it sat (a restart, an idle timeout) is dropped and
            // replaced instead of failing a request.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_PING_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        let sales = sales::SaleWriter::start(pool.clone());
        Ok(PgStore { pool, sales })
    }
}

impl PgStore {
    /// Writes uncapped sales together, as concurrent posts' sales are written: one statement
    /// for all of them when the database takes it, else each alone. An outcome per sale, in
    /// order; a sale whose ping is no longer an offer is a conflict and writes nothing.
    /// Each sale is checked balanced first, as `record_sale` checks it; one that is not fails
    /// alone and the others are written.
    pub async fn record_sales(&self, sales: &[(&NewSale, &[PostAttempt])]) -> Vec<StoreResult<()>> {
        let checked: Vec<StoreResult<()>> = sales
            .iter()
            .map(|(sale, _)| {
                sale.transaction
                    .check_balanced()
                    .map_err(|e| StoreError::Other(e.into()))
            })
            .collect();
        let balanced: Vec<(&NewSale, &[PostAttempt])> = sales
            .iter()
            .zip(&checked)
            .filter(|(_, check)| check.is_ok())
            .map(|(sale, _)| *sale)
            .collect();
        let mut written = sales::record_sales(&self.pool, &balanced).await.into_iter();
        checked
            .into_iter()
            .map(|check| {
                check?;
                written.next().unwrap_or_else(|| {
                    Err(StoreError::Other(anyhow::anyhow!("a sale got no outcome")))
                })
            })
            .collect()
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

/// A sale in one statement: the ping turns sold, and only if it did (every insert reads the
/// update's row) the ledger transaction (entries first, then the header, which waits for
/// them: its sealed check must not see the header), the sale, the buyer's dedupe keys, the
/// post attempts and the rollup go in. Arrays, not a row of parameters per entry or attempt,
/// so the text is the same for every sale and each connection prepares it once. One round
/// trip where a transaction of seven statements took nine; the ledger's balance is still
/// checked by the deferred triggers at commit.
static SALE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "with sold as ( \
            update ping set status = 'sold', post_state = 'done', post_result = $1, lead_id = $2 \
            where id = $3 and status = 'offer' returning id \
        ), entries as ( \
            insert into ledger_entry (transaction_id, account, amount, created_at) \
            select $4, e.account, e.amount, $5 from sold, \
                unnest($6::text[], $7::numeric[]) as e(account, amount) \
            returning 1 \
        ), header as ( \
            insert into ledger_transaction (id, kind, lead_id, reverses, created_at) \
            select $4, $8, $2, $9, $5 from sold where (select count(*) from entries) > 0 \
            returning id \
        ), sale_row as ( \
            insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price, payout, \
                buyer_lead_id, transaction_id, created_at) \
            select $2, $3, $10, $11, $12, $13, $14, $15, header.id, $5 from header \
        ), dedupe as ( \
            insert into dedupe_key (buyer_id, key_hash, created_at) \
            select $10, k.key_hash, $5 from sold, unnest($16::text[]) as k(key_hash) \
        ), attempts as ( \
            insert into post_attempt (ping_id, buyer_id, outcome, price, reason, latency_ms, \
                created_at) \
            select $3, a.buyer_id, a.outcome, a.price, a.reason, a.latency_ms, a.at from sold, \
                unnest($17::text[], $18::text[], $19::numeric[], $20::text[], $21::bigint[], \
                    $22::timestamptz[]) as a(buyer_id, outcome, price, reason, latency_ms, at) \
        ), rollup as ( \
            insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross, \
                payouts, margin, returns, returned_amount, returned_margin, shard) \
            select k.dimension, k.group_key, $23, $24, $25, $26, $27, $28, $29, $30, \
                pg_backend_pid() % $31 from sold, \
                unnest($32::text[], $33::text[]) as k(dimension, group_key) \
            {on_conflict} \
        ) \
        select count(*) from sold",
        on_conflict = reports::ROLLUP_ADD_ON_CONFLICT,
    )
});

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds post attempts as six arrays, for `unnest(text[], text[], numeric[], text[],
/// bigint[], timestamptz[]) as (buyer_id, outcome, price, reason, latency_ms, at)`.
fn bind_attempts<'q>(query: PgQuery<'q>, attempts: &'q [PostAttempt]) -> PgQuery<'q> {
    query
        .bind(
            attempts
                .iter()
                .map(|a| a.buyer_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(attempts.iter().map(|a| a.outcome).collect::<Vec<_>>())
        .bind(
            attempts
                .iter()
                .map(|a| a.price.decimal())
                .collect::<Vec<_>>(),
        )
        .bind(
            attempts
                .iter()
                .map(|a| a.reason.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(attempts.iter().map(|a| a.latency_ms).collect::<Vec<_>>())
        .bind(attempts.iter().map(|a| a.at).collect::<Vec<_>>())
}

/// Writes a sale with [`SALE_SQL`]; the rows of `ping` it turned sold, 1 or 0 (then it
/// wrote nothing).
async fn insert_sale<'e, E>(
    executor: E,
    sale: &NewSale,
    attempts: &[PostAttempt],
) -> StoreResult<i64>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let t = &sale.transaction;
    let sums = RevenueSums::of_transaction(t);
    let groups = rollup_keys(&sale.buyer_id, &sale.seller_id, &sale.vertical);
    let accounts: Vec<&str> = t.entries.iter().map(|e| e.account.as_str()).collect();
    let amounts: Vec<Decimal> = t
        .entries
        .iter()
        .map(|e| cents_to_numeric(e.amount_cents))
        .collect();
    let query = sqlx::query(&SALE_SQL)
        .bind(&sale.result_json)
        .bind(&sale.lead_id)
        .bind(&sale.ping_id)
        .bind(&t.id)
        .bind(t.created_at)
        .bind(accounts)
        .bind(amounts)
        .bind(t.kind.as_str())
        .bind(&t.reverses)
        .bind(&sale.buyer_id)
        .bind(&sale.seller_id)
        .bind(&sale.vertical)
        .bind(sale.price.decimal())
        .bind(sale.payout.decimal())
        .bind(&sale.buyer_lead_id)
        .bind(&sale.dedupe_keys);
    let row = bind_attempts(query, attempts)
        .bind(hour_start(t.created_at))
        .bind(sums.leads_sold)
        .bind(cents_to_numeric(sums.gross_cents))
        .bind(cents_to_numeric(sums.payouts_cents))
        .bind(cents_to_numeric(sums.margin_cents))
        .bind(sums.returns)
        .bind(cents_to_numeric(sums.returned_cents))
        .bind(cents_to_numeric(sums.returned_margin_cents))
        .bind(reports::ROLLUP_SHARDS)
        .bind(groups.map(|(dimension, _)| dimension))
        .bind(groups.map(|(_, group)| group))
        .fetch_one(executor)
        .await
        .map_err(classify)?;
    Ok(row.get::<i64, _>(0))
}

/// A new ping's post state: an offer waits for its post, anything else is done.
fn post_state_of(status: PingStatus) -> &'static str {
    if status == PingStatus::Offer {
        "open"
    } else {
        "done"
    }
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
        // One statement in autocommit whatever the batch's size: the pings in a
        // data-modifying `with`, the bids in its main insert, each column an array. One
        // round trip, and the same text for every batch, so each connection prepares it once
        // (a row of parameters per ping made a new statement for each batch size, parsed and
        // planned every time). The bids' references to their pings are checked at the end of
        // the statement, when the ping rows are there.
        let bids = || {
            pings
                .iter()
                .flat_map(|ping| ping.bids.iter().map(move |bid| (ping, bid)))
        };
        sqlx::query(
            "with p as ( \
                insert into ping (id, seller_id, vertical, sub_id, lead_json, status, price, \
                    payout, expires_at, created_at, post_state) \
                select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                    $5::text[], $6::text[], $7::numeric[], $8::numeric[], $9::timestamptz[], \
                    $10::timestamptz[], $11::text[]) \
            ) \
            insert into bid (ping_id, buyer_id, outcome, price, floor, bid_id, reason, \
                latency_ms, rank, created_at) \
            select * from unnest($12::text[], $13::text[], $14::text[], $15::numeric[], \
                $16::numeric[], $17::text[], $18::text[], $19::bigint[], $20::integer[], \
                $21::timestamptz[])",
        )
        .bind(pings.iter().map(|p| p.id.as_str()).collect::<Vec<_>>())
        .bind(
            pings
                .iter()
                .map(|p| p.seller_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            pings
                .iter()
                .map(|p| p.vertical.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            pings
                .iter()
                .map(|p| p.sub_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            pings
                .iter()
                .map(|p| p.lead_json.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(pings.iter().map(|p| p.status.as_str()).collect::<Vec<_>>())
        .bind(
            pings
                .iter()
                .map(|p| p.price.map(|m| m.decimal()))
                .collect::<Vec<_>>(),
        )
        .bind(
            pings
                .iter()
                .map(|p| p.payout.map(|m| m.decimal()))
                .collect::<Vec<_>>(),
        )
        .bind(pings.iter().map(|p| p.expires_at).collect::<Vec<_>>())
        .bind(pings.iter().map(|p| p.created_at).collect::<Vec<_>>())
        .bind(
            pings
                .iter()
                .map(|p| post_state_of(p.status))
                .collect::<Vec<_>>(),
        )
        .bind(bids().map(|(p, _)| p.id.as_str()).collect::<Vec<_>>())
        .bind(bids().map(|(_, b)| b.buyer_id.as_str()).collect::<Vec<_>>())
        .bind(bids().map(|(_, b)| b.outcome).collect::<Vec<_>>())
        .bind(
            bids()
                .map(|(_, b)| b.price.map(|m| m.decimal()))
                .collect::<Vec<_>>(),
        )
        .bind(bids().map(|(_, b)| b.floor.decimal()).collect::<Vec<_>>())
        .bind(bids().map(|(_, b)| b.bid_id.as_deref()).collect::<Vec<_>>())
        .bind(bids().map(|(_, b)| b.reason.as_deref()).collect::<Vec<_>>())
        .bind(bids().map(|(_, b)| b.latency_ms).collect::<Vec<_>>())
        .bind(bids().map(|(_, b)| b.rank).collect::<Vec<_>>())
        .bind(bids().map(|(p, _)| p.created_at).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
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
        sale.transaction
            .check_balanced()
            .map_err(|e| StoreError::Other(e.into()))?;
        if sale.cap_windows.is_empty() {
            // Nothing to check against committed sales: one statement in autocommit, shared
            // with the other sales ready at the same moment.
            return self.sales.write(sale, attempts).await;
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // One sale at a time per buyer, so the cap check and the insert are one step across
        // every node sharing this database.
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("caps:{}", sale.buyer_id))
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
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
        let written = insert_sale(&mut *tx, sale, attempts).await?;
        if written != 1 {
            return Err(StoreError::Conflict(
                "the ping is no longer open for a sale".into(),
            ));
        }
        tx.commit().await.map_err(classify)
    }

    async fn record_unsold(
        &self,
        ping_id: &str,
        result_json: &str,
        attempts: &[PostAttempt],
    ) -> StoreResult<()> {
        // One statement in autocommit: the ping's outcome and every attempt, or nothing.
        let query = sqlx::query(
            "with unsold as ( \
                update ping set status = 'unsold', post_state = 'done', post_result = $1 \
                where id = $2 and status = 'offer' \
            ) \
            insert into post_attempt (ping_id, buyer_id, outcome, price, reason, latency_ms, \
                created_at) \
            select $2, a.buyer_id, a.outcome, a.price, a.reason, a.latency_ms, a.at \
            from unnest($3::text[], $4::text[], $5::numeric[], $6::text[], $7::bigint[], \
                $8::timestamptz[]) as a(buyer_id, outcome, price, reason, latency_ms, at)",
        )
        .bind(result_json)
        .bind(ping_id);
        bind_attempts(query, attempts)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
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
