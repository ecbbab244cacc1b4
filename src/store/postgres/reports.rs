//! The finance reports' queries on PostgreSQL, and the hourly revenue rollup's writes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};

use super::{cents_to_numeric, classify, numeric_to_cents};
use crate::ledger::{Transaction, TransactionKind};
use crate::store::*;

/// Rollup shards: each database session adds to `pg_backend_pid() % ROLLUP_SHARDS`, so
/// concurrent sales on different connections do not wait for each other's row locks.
pub(super) const ROLLUP_SHARDS: i32 = 32;

/// What an insert into `revenue_hourly` does with a row that is there: adds to it.
pub(super) const ROLLUP_ADD_ON_CONFLICT: &str =
    " on conflict (dimension, hour_start, group_key, shard) do update set \
     leads_sold = revenue_hourly.leads_sold + excluded.leads_sold, \
     gross = revenue_hourly.gross + excluded.gross, \
     payouts = revenue_hourly.payouts + excluded.payouts, \
     margin = revenue_hourly.margin + excluded.margin, \
     returns = revenue_hourly.returns + excluded.returns, \
     returned_amount = revenue_hourly.returned_amount + excluded.returned_amount, \
     returned_margin = revenue_hourly.returned_margin + excluded.returned_margin";

/// Adds a sale's or a return's ledger transaction to the rollup, inside its database
/// transaction. Called last before the commit: the rows it updates stay locked until then.
/// The rows are this session's shard of each group's hour, so another connection's sale of
/// the same hour does not wait for them.
pub(super) async fn add_to_rollup(
    tx: &mut PgConnection,
    t: &Transaction,
    buyer_id: &str,
    seller_id: &str,
    vertical: &str,
) -> StoreResult<()> {
    let sums = RevenueSums::of_transaction(t);
    let hour = hour_start(t.created_at);
    // The four groups in one statement; they never meet, so no row is updated twice.
    let mut upsert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross, \
         payouts, margin, returns, returned_amount, returned_margin, shard) ",
    );
    upsert.push_values(
        rollup_keys(buyer_id, seller_id, vertical),
        |mut row, (dimension, group)| {
            row.push_bind(dimension)
                .push_bind(group)
                .push_bind(hour)
                .push_bind(sums.leads_sold)
                .push_bind(cents_to_numeric(sums.gross_cents))
                .push_bind(cents_to_numeric(sums.payouts_cents))
                .push_bind(cents_to_numeric(sums.margin_cents))
                .push_bind(sums.returns)
                .push_bind(cents_to_numeric(sums.returned_cents))
                .push_bind(cents_to_numeric(sums.returned_margin_cents))
                .push_unseparated(", pg_backend_pid() % ")
                .push_bind_unseparated(ROLLUP_SHARDS);
        },
    );
    upsert.push(ROLLUP_ADD_ON_CONFLICT);
    upsert.build().execute(&mut *tx).await.map_err(classify)?;
    Ok(())
}

/// The rollup's groups of a lead's sale, for its return.
pub(super) async fn sale_keys(
    tx: &mut PgConnection,
    lead_id: &str,
) -> StoreResult<(String, String, String)> {
    let row = sqlx::query("select buyer_id, seller_id, vertical from sale where lead_id = $1")
        .bind(lead_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(classify)?
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("a return of a lead never sold")))?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// The same statement as the backfill of migrations/postgres/0002_reports.sql.
const ROLLUP_REBUILD: &str = "insert into revenue_hourly (dimension, group_key, hour_start, \
    leads_sold, gross, payouts, margin, returns, returned_amount, returned_margin) \
with txn as ( \
    select t.kind as kind, date_trunc('hour', t.created_at, 'UTC') as hour_start, \
           s.buyer_id as buyer_id, s.seller_id as seller_id, s.vertical as vertical, \
           coalesce(sum(e.amount) filter (where e.account like 'buyer:%'), 0) as buyer_amount, \
           coalesce(sum(e.amount) filter (where e.account like 'seller:%'), 0) as seller_amount, \
           coalesce(sum(e.amount) filter (where e.account = 'exchange:revenue'), 0) as exchange_amount \
    from ledger_transaction t join ledger_entry e on e.transaction_id = t.id \
    join sale s on s.lead_id = t.lead_id group by t.id, s.lead_id \
), cell as ( \
    select 'all' as dimension, '' as group_key, txn.* from txn \
    union all select 'buyer', buyer_id, txn.* from txn \
    union all select 'seller', seller_id, txn.* from txn \
    union all select 'vertical', vertical, txn.* from txn \
) \
select dimension, group_key, hour_start, \
       count(*) filter (where kind = 'sale'), \
       coalesce(sum(-buyer_amount) filter (where kind = 'sale'), 0), \
       coalesce(sum(seller_amount) filter (where kind = 'sale'), 0), \
       coalesce(sum(exchange_amount) filter (where kind = 'sale'), 0), \
       count(*) filter (where kind = 'return'), \
       coalesce(sum(buyer_amount) filter (where kind = 'return'), 0), \
       coalesce(sum(-exchange_amount) filter (where kind = 'return'), 0) \
from cell group by dimension, group_key, hour_start";

/// Folds the shards of every hour before `before` into shard 0, in one statement: a report
/// running beside it sees the rows before or after, and the sums are the same either way.
/// Sales and returns add to the current hour, so the hours folded are cold.
const ROLLUP_COMPACT: &str = "with moved as ( \
    delete from revenue_hourly where shard <> 0 and hour_start < $1 returning * \
) \
insert into revenue_hourly (dimension, group_key, hour_start, shard, leads_sold, gross, payouts, \
    margin, returns, returned_amount, returned_margin) \
select dimension, group_key, hour_start, 0, sum(leads_sold), sum(gross), sum(payouts), \
    sum(margin), sum(returns), sum(returned_amount), sum(returned_margin) \
from moved group by dimension, group_key, hour_start \
on conflict (dimension, hour_start, group_key, shard) do update set \
    leads_sold = revenue_hourly.leads_sold + excluded.leads_sold, \
    gross = revenue_hourly.gross + excluded.gross, \
    payouts = revenue_hourly.payouts + excluded.payouts, \
    margin = revenue_hourly.margin + excluded.margin, \
    returns = revenue_hourly.returns + excluded.returns, \
    returned_amount = revenue_hourly.returned_amount + excluded.returned_amount, \
    returned_margin = revenue_hourly.returned_margin + excluded.returned_margin";

/// Rows folded.
pub(super) async fn compact_rollup(pool: &PgPool, before: DateTime<Utc>) -> StoreResult<u64> {
    let folded = sqlx::query(ROLLUP_COMPACT)
        .bind(before)
        .execute(pool)
        .await
        .map_err(classify)?
        .rows_affected();
    Ok(folded)
}

pub(super) async fn rebuild_rollup(pool: &PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(classify)?;
    // Sales and returns wait while the rollup is rebuilt, so none is counted twice or missed.
    sqlx::query("lock table revenue_hourly in exclusive mode")
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    sqlx::query("delete from revenue_hourly")
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    sqlx::query(ROLLUP_REBUILD)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    tx.commit().await.map_err(classify)?;
    // Every row is new: fresh statistics, so that reports are planned for the table as it is.
    sqlx::query("analyze revenue_hourly")
        .execute(pool)
        .await
        .map_err(classify)?;
    Ok(())
}

fn group_column(dimension: RevenueDimension) -> &'static str {
    match dimension {
        RevenueDimension::All => "''::text",
        RevenueDimension::Buyer => "s.buyer_id",
        RevenueDimension::Seller => "s.seller_id",
        RevenueDimension::Vertical => "s.vertical",
    }
}

/// Time in buckets of `bucket_s` seconds since the Unix epoch.
fn bucket(column: &str, bucket_s: Option<i64>) -> String {
    match bucket_s {
        None => "null::timestamptz".to_string(),
        Some(b) => {
            format!("to_timestamp((floor(extract(epoch from {column}) / {b}) * {b})::float8)")
        }
    }
}

pub(super) async fn revenue(pool: &PgPool, query: &RevenueQuery) -> StoreResult<Vec<RevenueCell>> {
    let sql = match query.source {
        RevenueSource::Rollup => format!(
            "select {bucket}, group_key, sum(leads_sold)::bigint, sum(gross), sum(payouts), \
             sum(margin), sum(returns)::bigint, sum(returned_amount), sum(returned_margin) \
             from revenue_hourly where dimension = $3 and hour_start >= $1 and hour_start < $2 \
             group by 1, 2",
            bucket = match query.bucket_s {
                Some(ROLLUP_BUCKET_S) => "hour_start".to_string(),
                other => bucket("hour_start", other),
            },
        ),
        RevenueSource::Ledger => format!(
            "select {bucket}, {group}, \
             count(*) filter (where t.kind = 'sale' and e.account like 'buyer:%'), \
             coalesce(sum(-e.amount) filter (where t.kind = 'sale' and e.account like 'buyer:%'), 0), \
             coalesce(sum(e.amount) filter (where t.kind = 'sale' and e.account like 'seller:%'), 0), \
             coalesce(sum(e.amount) filter (where t.kind = 'sale' and e.account = 'exchange:revenue'), 0), \
             count(*) filter (where t.kind = 'return' and e.account like 'buyer:%'), \
             coalesce(sum(e.amount) filter (where t.kind = 'return' and e.account like 'buyer:%'), 0), \
             coalesce(sum(-e.amount) filter (where t.kind = 'return' and e.account = 'exchange:revenue'), 0) \
             from ledger_entry e join ledger_transaction t on t.id = e.transaction_id \
             join sale s on s.lead_id = t.lead_id \
             where e.created_at >= $1 and e.created_at < $2 group by 1, 2",
            bucket = bucket("e.created_at", query.bucket_s),
            group = group_column(query.dimension),
        ),
    };
    let mut q = sqlx::query(&sql).bind(query.start).bind(query.end);
    if query.source == RevenueSource::Rollup {
        q = q.bind(query.dimension.as_str());
    }
    let rows = q.fetch_all(pool).await.map_err(classify)?;
    rows.into_iter()
        .map(|r| {
            Ok(RevenueCell {
                bucket: r.get(0),
                group: r.get(1),
                sums: RevenueSums {
                    leads_sold: r.get(2),
                    gross_cents: numeric_to_cents(r.get(3))?,
                    payouts_cents: numeric_to_cents(r.get(4))?,
                    margin_cents: numeric_to_cents(r.get(5))?,
                    returns: r.get(6),
                    returned_cents: numeric_to_cents(r.get(7))?,
                    returned_margin_cents: numeric_to_cents(r.get(8))?,
                },
            })
        })
        .collect()
}

pub(super) async fn ledger_page(
    pool: &PgPool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    after: Option<LedgerCursor>,
    limit: i64,
) -> StoreResult<Vec<LedgerRow>> {
    // Before the first entry of the range: every id is positive.
    let after = after.unwrap_or(LedgerCursor {
        time: start,
        entry_id: 0,
    });
    let rows = sqlx::query(
        "select e.id, t.id, e.created_at, t.kind, e.account, e.amount, t.lead_id \
         from ledger_entry e join ledger_transaction t on t.id = e.transaction_id \
         where e.created_at >= $1 and e.created_at < $2 and (e.created_at, e.id) > ($3, $4) \
         order by e.created_at, e.id limit $5",
    )
    .bind(start)
    .bind(end)
    .bind(after.time)
    .bind(after.entry_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(classify)?;
    rows.into_iter()
        .map(|r| {
            let kind: String = r.get(3);
            Ok(LedgerRow {
                entry_id: r.get(0),
                entry: EntryRow {
                    transaction_id: r.get(1),
                    time: r.get(2),
                    kind: TransactionKind::parse(&kind)
                        .ok_or_else(|| anyhow::anyhow!("unknown transaction kind"))?,
                    account: r.get(4),
                    amount_cents: numeric_to_cents(r.get(5))?,
                    lead_id: r.get(6),
                },
            })
        })
        .collect()
}

pub(super) async fn auction_counts(
    pool: &PgPool,
    dimension: AuctionDimension,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> StoreResult<Vec<AuctionCell>> {
    let (group, join) = match dimension {
        AuctionDimension::Buyer => ("x.buyer_id", ""),
        AuctionDimension::Seller => ("p.seller_id", "join ping p on p.id = x.ping_id"),
        AuctionDimension::Vertical => ("p.vertical", "join ping p on p.id = x.ping_id"),
    };
    let range = "x.created_at >= $1 and x.created_at < $2";
    let bids = format!(
        "select {group}, count(*), count(*) filter (where x.outcome in ('bid', 'below_floor')), \
         coalesce(sum(x.price) filter (where x.outcome in ('bid', 'below_floor')), 0), \
         count(*) filter (where x.outcome = 'below_floor'), \
         count(*) filter (where x.outcome = 'no_bid'), \
         count(*) filter (where x.outcome = 'timeout'), \
         count(*) filter (where x.outcome = 'error'), count(*) filter (where x.rank = 1) \
         from bid x {join} where {range} group by 1"
    );
    let posts = format!(
        "select {group}, count(*) filter (where x.outcome = 'accepted'), \
         count(*) filter (where x.outcome in ('rejected', 'timeout', 'error')), \
         count(*) filter (where x.outcome = 'timeout'), \
         count(*) filter (where x.outcome = 'error') \
         from post_attempt x {join} where {range} group by 1"
    );
    let pings = match dimension {
        // A buyer's pings are its bid requests, counted with the bids.
        AuctionDimension::Buyer => None,
        AuctionDimension::Seller => Some("seller_id"),
        AuctionDimension::Vertical => Some("vertical"),
    }
    .map(|column| format!("select {column}, count(*) from ping x where {range} group by 1"));
    let fetch = |sql: String| async move {
        sqlx::query(&sql)
            .bind(start)
            .bind(end)
            .fetch_all(pool)
            .await
            .map_err(classify)
    };
    let mut cells = Vec::new();
    for r in fetch(bids).await? {
        let requests: i64 = r.get(1);
        cells.push(AuctionCell {
            group: r.get(0),
            pings: if dimension == AuctionDimension::Buyer {
                requests
            } else {
                0
            },
            bid_requests: requests,
            bids: r.get(2),
            bid_cents: numeric_to_cents(r.get(3))?,
            below_floor: r.get(4),
            no_bids: r.get(5),
            bid_timeouts: r.get(6),
            bid_errors: r.get(7),
            wins: r.get(8),
            ..AuctionCell::default()
        });
    }
    for r in fetch(posts).await? {
        cells.push(AuctionCell {
            group: r.get(0),
            posts_accepted: r.get(1),
            posts_rejected: r.get(2),
            post_timeouts: r.get(3),
            post_errors: r.get(4),
            ..AuctionCell::default()
        });
    }
    if let Some(sql) = pings {
        for r in fetch(sql).await? {
            cells.push(AuctionCell {
                group: r.get(0),
                pings: r.get(1),
                ..AuctionCell::default()
            });
        }
    }
    Ok(cells)
}
