//! Group commit for sales on PostgreSQL. A sale with no cap to re-check is one statement in
//! autocommit; sales that finish at about the same time share that statement, so a busy
//! exchange starts one executor, fires one commit and flushes the log once for several of
//! them. Each post still answers only once its own sale is committed. A batch the database
//! refuses is written again one sale at a time, so a bad sale fails alone; a batch that
//! cannot reach the database fails every sale in it at once, as each would have alone.
//! Capped sales never pass through here: they lock their buyer and re-count its sales in a
//! transaction of their own (`PgStore::record_sale`).

use std::collections::HashSet;
use std::sync::Arc;

use rust_decimal::Decimal;
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{cents_to_numeric, classify, insert_sale, reports};
use crate::store::{
    hour_start, rollup_keys, NewSale, PostAttempt, RevenueSums, StoreError, StoreResult,
};

/// Sales waiting for a writer; a full queue makes the post wait (back-pressure).
const QUEUE_MAX: usize = 4_096;
/// Most sales in one statement.
const BATCH_SALES_MAX: usize = 64;
/// Writer tasks: while one batch is in the database, the next one gathers.
const WRITERS: usize = 2;

struct Job {
    sale: NewSale,
    attempts: Vec<PostAttempt>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The handle posts write their sales through; the writers end when it is dropped.
pub(super) struct SaleWriter {
    jobs: mpsc::Sender<Job>,
}

impl SaleWriter {
    /// Starts the writer tasks on the current tokio runtime.
    pub(super) fn start(pool: PgPool) -> SaleWriter {
        let (jobs, queue) = mpsc::channel(QUEUE_MAX);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(pool.clone(), queue.clone()));
        }
        SaleWriter { jobs }
    }

    /// Records the sale with whatever others are waiting; returns once it is committed.
    pub(super) async fn write(&self, sale: &NewSale, attempts: &[PostAttempt]) -> StoreResult<()> {
        let (done, committed) = oneshot::channel();
        let job = Job {
            sale: sale.clone(),
            attempts: attempts.to_vec(),
            done,
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        committed.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the sale writer has stopped"))
}

fn not_open() -> StoreError {
    StoreError::Conflict("the ping is no longer open for a sale".into())
}

async fn write_batches(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let jobs = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < BATCH_SALES_MAX {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        let sales: Vec<(&NewSale, &[PostAttempt])> = jobs
            .iter()
            .map(|job| (&job.sale, job.attempts.as_slice()))
            .collect();
        let outcomes = record_sales(&pool, &sales).await;
        for (job, outcome) in jobs.into_iter().zip(outcomes) {
            let _ = job.done.send(outcome);
        }
    }
}

/// Writes uncapped sales, each already checked balanced by the caller, in as few statements as the database allows, and
/// gives each its own outcome, in order: a sale whose ping is no longer an offer is a
/// conflict and writes nothing.
pub(super) async fn record_sales(
    pool: &PgPool,
    sales: &[(&NewSale, &[PostAttempt])],
) -> Vec<StoreResult<()>> {
    match sales {
        [] => return Vec::new(),
        [(sale, attempts)] => return vec![record_one(pool, sale, attempts).await],
        _ => {}
    }
    match insert_sales(pool, sales).await {
        Ok(sold) => sales
            .iter()
            .map(|(sale, _)| match sold.contains(&sale.ping_id) {
                true => Ok(()),
                false => Err(not_open()),
            })
            .collect(),
        // The database is away: every sale of the batch gets the same answer, at once.
        Err(StoreError::Unavailable(_)) => sales
            .iter()
            .map(|_| {
                Err(StoreError::Unavailable(anyhow::anyhow!(
                    "database unavailable"
                )))
            })
            .collect(),
        // One sale spoilt the batch (nothing of it is kept): each is tried alone.
        Err(_) => {
            let mut outcomes = Vec::with_capacity(sales.len());
            for (sale, attempts) in sales {
                outcomes.push(record_one(pool, sale, attempts).await);
            }
            outcomes
        }
    }
}

/// One sale in its own statement.
async fn record_one(pool: &PgPool, sale: &NewSale, attempts: &[PostAttempt]) -> StoreResult<()> {
    match insert_sale(pool, sale, attempts).await? {
        1 => Ok(()),
        _ => Err(not_open()),
    }
}

/// [`super::SALE_SQL`] for several sales: every column an array, rows of a sale tied to it by
/// its ping id. The rollup adds the batch's sales of a group up first (one statement may not
/// update a row twice), in key order, so two batches meeting on a shard lock in one order.
static SALES_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "with s as ( \
            select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                $5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                $11::numeric[], $12::numeric[], $13::text[], $14::timestamptz[], $15::bigint[], \
                $16::numeric[], $17::numeric[], $18::numeric[], $19::bigint[], $20::numeric[], \
                $21::numeric[]) \
            as s(ping_id, lead_id, result_json, txn_id, created_at, kind, reverses, buyer_id, \
                seller_id, vertical, price, payout, buyer_lead_id, hour_start, leads_sold, gross, \
                payouts, margin, returns, returned_amount, returned_margin) \
        ), sold as ( \
            update ping set status = 'sold', post_state = 'done', post_result = s.result_json, \
                lead_id = s.lead_id \
            from s where ping.id = s.ping_id and ping.status = 'offer' \
            returning ping.id \
        ), entries as ( \
            insert into ledger_entry (transaction_id, account, amount, created_at) \
            select s.txn_id, e.account, e.amount, s.created_at \
            from unnest($22::text[], $23::text[], $24::numeric[]) as e(ping_id, account, amount) \
            join s on s.ping_id = e.ping_id join sold on sold.id = e.ping_id \
            returning 1 \
        ), header as ( \
            insert into ledger_transaction (id, kind, lead_id, reverses, created_at) \
            select s.txn_id, s.kind, s.lead_id, s.reverses, s.created_at \
            from s join sold on sold.id = s.ping_id \
            where (select count(*) from entries) > 0 \
            returning id \
        ), sale_row as ( \
            insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price, payout, \
                buyer_lead_id, transaction_id, created_at) \
            select s.lead_id, s.ping_id, s.buyer_id, s.seller_id, s.vertical, s.price, \
                s.payout, s.buyer_lead_id, header.id, s.created_at \
            from header join s on s.txn_id = header.id \
        ), dedupe as ( \
            insert into dedupe_key (buyer_id, key_hash, created_at) \
            select s.buyer_id, k.key_hash, s.created_at \
            from unnest($25::text[], $26::text[]) as k(ping_id, key_hash) \
            join s on s.ping_id = k.ping_id join sold on sold.id = k.ping_id \
        ), attempts as ( \
            insert into post_attempt (ping_id, buyer_id, outcome, price, reason, latency_ms, \
                created_at) \
            select a.ping_id, a.buyer_id, a.outcome, a.price, a.reason, a.latency_ms, a.at \
            from unnest($27::text[], $28::text[], $29::text[], $30::numeric[], $31::text[], \
                $32::bigint[], $33::timestamptz[]) \
                as a(ping_id, buyer_id, outcome, price, reason, latency_ms, at) \
            join sold on sold.id = a.ping_id \
        ), rollup as ( \
            insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross, \
                payouts, margin, returns, returned_amount, returned_margin, shard) \
            select g.dimension, g.group_key, s.hour_start, sum(s.leads_sold)::bigint, \
                sum(s.gross), sum(s.payouts), sum(s.margin), sum(s.returns)::bigint, \
                sum(s.returned_amount), sum(s.returned_margin), pg_backend_pid() % $37 \
            from unnest($34::text[], $35::text[], $36::text[]) as g(ping_id, dimension, group_key) \
            join s on s.ping_id = g.ping_id join sold on sold.id = g.ping_id \
            group by g.dimension, g.group_key, s.hour_start \
            order by g.dimension, g.group_key, s.hour_start \
            {on_conflict} \
        ) \
        select id from sold",
        on_conflict = reports::ROLLUP_ADD_ON_CONFLICT,
    )
});

/// One column of the batch, one value per sale (or per entry, key, attempt).
fn column<'a, T, U>(items: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    items.iter().map(value).collect()
}

/// Writes the sales with [`SALES_SQL`]; the ping ids it turned sold.
async fn insert_sales(
    pool: &PgPool,
    sales: &[(&NewSale, &[PostAttempt])],
) -> StoreResult<HashSet<String>> {
    let sales_only: Vec<&NewSale> = sales.iter().map(|(sale, _)| *sale).collect();
    let sums: Vec<RevenueSums> =
        column(&sales_only, |s| RevenueSums::of_transaction(&s.transaction));
    let entries: Vec<(&str, &str, Decimal)> = sales_only
        .iter()
        .flat_map(|s| {
            s.transaction.entries.iter().map(move |e| {
                (
                    s.ping_id.as_str(),
                    e.account.as_str(),
                    cents_to_numeric(e.amount_cents),
                )
            })
        })
        .collect();
    let keys: Vec<(&str, &str)> = sales_only
        .iter()
        .flat_map(|s| {
            s.dedupe_keys
                .iter()
                .map(move |k| (s.ping_id.as_str(), k.as_str()))
        })
        .collect();
    let attempts: Vec<(&str, &PostAttempt)> = sales
        .iter()
        .flat_map(|(s, attempts)| attempts.iter().map(move |a| (s.ping_id.as_str(), a)))
        .collect();
    let groups: Vec<(&str, &str, &str)> = sales_only
        .iter()
        .flat_map(|s| {
            rollup_keys(&s.buyer_id, &s.seller_id, &s.vertical)
                .map(|(dimension, group)| (s.ping_id.as_str(), dimension, group))
        })
        .collect();
    let rows = sqlx::query(&SALES_SQL)
        .bind(column(&sales_only, |s| s.ping_id.as_str()))
        .bind(column(&sales_only, |s| s.lead_id.as_str()))
        .bind(column(&sales_only, |s| s.result_json.as_str()))
        .bind(column(&sales_only, |s| s.transaction.id.as_str()))
        .bind(column(&sales_only, |s| s.transaction.created_at))
        .bind(column(&sales_only, |s| s.transaction.kind.as_str()))
        .bind(column(&sales_only, |s| s.transaction.reverses.as_deref()))
        .bind(column(&sales_only, |s| s.buyer_id.as_str()))
        .bind(column(&sales_only, |s| s.seller_id.as_str()))
        .bind(column(&sales_only, |s| s.vertical.as_str()))
        .bind(column(&sales_only, |s| s.price.decimal()))
        .bind(column(&sales_only, |s| s.payout.decimal()))
        .bind(column(&sales_only, |s| s.buyer_lead_id.as_deref()))
        .bind(column(&sales_only, |s| {
            hour_start(s.transaction.created_at)
        }))
        .bind(column(&sums, |s| s.leads_sold))
        .bind(column(&sums, |s| cents_to_numeric(s.gross_cents)))
        .bind(column(&sums, |s| cents_to_numeric(s.payouts_cents)))
        .bind(column(&sums, |s| cents_to_numeric(s.margin_cents)))
        .bind(column(&sums, |s| s.returns))
        .bind(column(&sums, |s| cents_to_numeric(s.returned_cents)))
        .bind(column(&sums, |s| cents_to_numeric(s.returned_margin_cents)))
        .bind(column(&entries, |e| e.0))
        .bind(column(&entries, |e| e.1))
        .bind(column(&entries, |e| e.2))
        .bind(column(&keys, |k| k.0))
        .bind(column(&keys, |k| k.1))
        .bind(column(&attempts, |a| a.0))
        .bind(column(&attempts, |a| a.1.buyer_id.as_str()))
        .bind(column(&attempts, |a| a.1.outcome))
        .bind(column(&attempts, |a| a.1.price.decimal()))
        .bind(column(&attempts, |a| a.1.reason.as_deref()))
        .bind(column(&attempts, |a| a.1.latency_ms))
        .bind(column(&attempts, |a| a.1.at))
        .bind(column(&groups, |g| g.0))
        .bind(column(&groups, |g| g.1))
        .bind(column(&groups, |g| g.2))
        .bind(reports::ROLLUP_SHARDS)
        .fetch_all(pool)
        .await
        .map_err(classify)?;
    Ok(rows.iter().map(|row| row.get::<String, _>(0)).collect())
}
