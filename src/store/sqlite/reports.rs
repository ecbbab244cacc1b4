//! The finance reports' queries on SQLite, and the hourly revenue rollup's writes.

use chrono::{DateTime, Utc};
use sqlx::{Row, SqlitePool};

use super::{classify, micros, time};
use crate::ledger::TransactionKind;
use crate::store::*;

/// The same statement as the backfill of migrations/sqlite/0002_reports.sql.
const ROLLUP_REBUILD: &str = "with txn as ( \
    select t.kind as kind, (t.created_at / 3600000000) * 3600000000 as hour_start, \
           s.buyer_id as buyer_id, s.seller_id as seller_id, s.vertical as vertical, \
           sum(case when e.account like 'buyer:%' then e.amount_cents else 0 end) as buyer_cents, \
           sum(case when e.account like 'seller:%' then e.amount_cents else 0 end) as seller_cents, \
           sum(case when e.account = 'exchange:revenue' then e.amount_cents else 0 end) as exchange_cents \
    from ledger_transaction t join ledger_entry e on e.transaction_id = t.id \
    join sale s on s.lead_id = t.lead_id group by t.id \
), cell as ( \
    select 'all' as dimension, '' as group_key, txn.* from txn \
    union all select 'buyer', buyer_id, txn.* from txn \
    union all select 'seller', seller_id, txn.* from txn \
    union all select 'vertical', vertical, txn.* from txn \
) \
insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross_cents, \
    payouts_cents, margin_cents, returns, returned_cents, returned_margin_cents) \
select dimension, group_key, hour_start, sum(kind = 'sale'), \
       sum(case when kind = 'sale' then -buyer_cents else 0 end), \
       sum(case when kind = 'sale' then seller_cents else 0 end), \
       sum(case when kind = 'sale' then exchange_cents else 0 end), \
       sum(kind = 'return'), \
       sum(case when kind = 'return' then buyer_cents else 0 end), \
       sum(case when kind = 'return' then -exchange_cents else 0 end) \
from cell group by dimension, group_key, hour_start";

/// Runs on the writer's connection (`writer.rs`), in one transaction.
pub(super) fn rebuild_rollup(connection: &mut rusqlite::Connection) -> StoreResult<()> {
    use super::writer::classify;
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(classify)?;
    tx.execute("delete from revenue_hourly", [])
        .map_err(classify)?;
    tx.execute(ROLLUP_REBUILD, []).map_err(classify)?;
    tx.commit().map_err(classify)?;
    // Every row is new: fresh statistics, so that reports are planned for the table as it is.
    connection
        .execute("analyze revenue_hourly", [])
        .map_err(classify)?;
    Ok(())
}

fn group_column(dimension: RevenueDimension) -> &'static str {
    match dimension {
        RevenueDimension::All => "''",
        RevenueDimension::Buyer => "s.buyer_id",
        RevenueDimension::Seller => "s.seller_id",
        RevenueDimension::Vertical => "s.vertical",
    }
}

pub(super) async fn revenue(
    pool: &SqlitePool,
    query: &RevenueQuery,
) -> StoreResult<Vec<RevenueCell>> {
    let bucket_us = query.bucket_s.map(|s| s * 1_000_000);
    let sql = match query.source {
        RevenueSource::Rollup => format!(
            "select {bucket}, group_key, sum(leads_sold), sum(gross_cents), sum(payouts_cents), \
             sum(margin_cents), sum(returns), sum(returned_cents), sum(returned_margin_cents) \
             from revenue_hourly where dimension = ? and hour_start >= ? and hour_start < ? \
             group by 1, 2",
            bucket = bucket_us.map_or("null".to_string(), |b| format!(
                "(hour_start - ((hour_start % {b}) + {b}) % {b})"
            )),
        ),
        RevenueSource::Ledger => format!(
            "select {bucket}, {group}, \
             sum(t.kind = 'sale' and e.account like 'buyer:%'), \
             sum(case when t.kind = 'sale' and e.account like 'buyer:%' then -e.amount_cents else 0 end), \
             sum(case when t.kind = 'sale' and e.account like 'seller:%' then e.amount_cents else 0 end), \
             sum(case when t.kind = 'sale' and e.account = 'exchange:revenue' then e.amount_cents else 0 end), \
             sum(t.kind = 'return' and e.account like 'buyer:%'), \
             sum(case when t.kind = 'return' and e.account like 'buyer:%' then e.amount_cents else 0 end), \
             sum(case when t.kind = 'return' and e.account = 'exchange:revenue' then -e.amount_cents else 0 end) \
             from ledger_entry e join ledger_transaction t on t.id = e.transaction_id \
             join sale s on s.lead_id = t.lead_id \
             where e.created_at >= ? and e.created_at < ? group by 1, 2",
            bucket = bucket_us.map_or("null".to_string(), |b| format!(
                "(e.created_at - ((e.created_at % {b}) + {b}) % {b})"
            )),
            group = group_column(query.dimension),
        ),
    };
    let mut q = sqlx::query(&sql);
    if query.source == RevenueSource::Rollup {
        q = q.bind(query.dimension.as_str());
    }
    let rows = q
        .bind(micros(query.start))
        .bind(micros(query.end))
        .fetch_all(pool)
        .await
        .map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|r| RevenueCell {
            bucket: r.get::<Option<i64>, _>(0).map(time),
            group: r.get(1),
            sums: RevenueSums {
                leads_sold: r.get(2),
                gross_cents: r.get(3),
                payouts_cents: r.get(4),
                margin_cents: r.get(5),
                returns: r.get(6),
                returned_cents: r.get(7),
                returned_margin_cents: r.get(8),
            },
        })
        .collect())
}

pub(super) async fn ledger_page(
    pool: &SqlitePool,
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
        "select e.id, t.id, e.created_at, t.kind, e.account, e.amount_cents, t.lead_id \
         from ledger_entry e join ledger_transaction t on t.id = e.transaction_id \
         where e.created_at >= ? and e.created_at < ? and (e.created_at, e.id) > (?, ?) \
         order by e.created_at, e.id limit ?",
    )
    .bind(micros(start))
    .bind(micros(end))
    .bind(micros(after.time))
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
                    time: time(r.get(2)),
                    kind: TransactionKind::parse(&kind)
                        .ok_or_else(|| anyhow::anyhow!("unknown transaction kind"))?,
                    account: r.get(4),
                    amount_cents: r.get(5),
                    lead_id: r.get(6),
                },
            })
        })
        .collect()
}

pub(super) async fn auction_counts(
    pool: &SqlitePool,
    dimension: AuctionDimension,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> StoreResult<Vec<AuctionCell>> {
    // `x` is the post attempts (or the pings), `b` the bid log, `p` their ping.
    let (group, join) = match dimension {
        AuctionDimension::Buyer => ("x.buyer_id", ""),
        AuctionDimension::Seller => ("p.seller_id", "join ping p on p.id = x.ping_id"),
        AuctionDimension::Vertical => ("p.vertical", "join ping p on p.id = x.ping_id"),
    };
    let bid_group = group.replace("x.", "b.");
    let range = "x.created_at >= ? and x.created_at < ?";
    // The bid log has no time index (migration 0006): a range's bids are its pings' bids,
    // found through `ping_created` and read a ping's rows together by the bid key.
    let bids = format!(
        "select {bid_group}, count(*), sum(b.outcome in ('bid', 'below_floor')), \
         coalesce(sum(case when b.outcome in ('bid', 'below_floor') then b.price_cents end), 0), \
         sum(b.outcome = 'below_floor'), sum(b.outcome = 'no_bid'), sum(b.outcome = 'timeout'), \
         sum(b.outcome = 'error'), sum(coalesce(b.rank = 1, 0)) \
         from ping p join bid b on b.ping_id = p.id \
         where p.created_at >= ? and p.created_at < ? group by 1"
    );
    let posts = format!(
        "select {group}, sum(x.outcome = 'accepted'), \
         sum(x.outcome in ('rejected', 'timeout', 'error')), sum(x.outcome = 'timeout'), \
         sum(x.outcome = 'error') from post_attempt x {join} where {range} group by 1"
    );
    let pings = match dimension {
        // A buyer's pings are its bid requests, counted with the bids.
        AuctionDimension::Buyer => None,
        AuctionDimension::Seller => Some("seller_id"),
        AuctionDimension::Vertical => Some("vertical"),
    }
    .map(|column| {
        format!(
            "select {column}, count(*) from ping x where {range} group by 1",
            column = column
        )
    });
    let fetch = |sql: String| async move {
        sqlx::query(&sql)
            .bind(micros(start))
            .bind(micros(end))
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
            bid_cents: r.get(3),
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
