//! The revenue report at scale: seeds 1,000,000 sales (5% of them returned) straight into
//! SQLite and PostgreSQL through SQL, builds the hourly rollup from that ledger, then times
//! `pingpost::reports::revenue_report` (the endpoint's own code path) for each `group_by`.
//!
//! Usage: bench-reports [--sales N] [--days D] [--runs R] [--sqlite-only | --postgres-only]
//! PostgreSQL: `PINGPOST_BENCH_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/postgres);
//! a fresh database is made there and dropped at the end.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use futures_util::StreamExt;
use pingpost::reports::{revenue_report, Format, Period, RevenueGroup};
use pingpost::store::{DynStore, RevenueDimension, RevenueQuery, RevenueSource};
use sqlx::{Connection, Executor};

/// Sales seeded per database transaction: bounds the memory of PostgreSQL's deferred checks.
const CHUNK: i64 = 100_000;
const BUYERS: i64 = 24;
const SELLERS: i64 = 8;
/// The seeded period starts here (UTC midnight).
const START: &str = "2026-01-01";

struct Options {
    sales: i64,
    days: i64,
    runs: usize,
    sqlite: bool,
    postgres: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        sales: 1_000_000,
        days: 90,
        runs: 5,
        sqlite: true,
        postgres: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> anyhow::Result<i64> {
            args.next()
                .with_context(|| format!("{name} needs a number"))?
                .parse()
                .with_context(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--sales" => o.sales = number("--sales")?,
            "--days" => o.days = number("--days")?,
            "--runs" => o.runs = number("--runs")? as usize,
            "--sqlite-only" => o.postgres = false,
            "--postgres-only" => o.sqlite = false,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        o.sales > 0 && o.days > 0 && o.runs > 0,
        "counts must be positive"
    );
    Ok(o)
}

fn start_date() -> NaiveDate {
    NaiveDate::from_str(START).unwrap_or_default()
}

fn start_us() -> i64 {
    start_date()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_micros()
}

/// The seed rows of sales `[lo, hi)`, as one SELECT per backend. Everything is derived from
/// the sale number, so both databases hold the same books: buyer `i*7 mod 24`, its vertical
/// `buyer mod 3`, seller `i*13 mod 8` with payout share 70% + 2% per seller number, price
/// 5.00 to 49.99, times spread evenly over the period, and every twentieth sale returned
/// half a day to two and a half days later.
fn seed_select(sqlite: bool, lo: i64, hi: i64, step_us: i64) -> String {
    let series = if sqlite {
        format!(
            "with recursive n(i) as (select {lo} union all select i + 1 from n where i + 1 < {hi}) select i from n"
        )
    } else {
        format!("select generate_series({lo}, {hi} - 1)::bigint as i")
    };
    let pad = if sqlite {
        "printf('%02d', (i * 7) % 24)"
    } else {
        "lpad(((i * 7) % 24)::text, 2, '0')"
    };
    format!(
        "select i, 'buyer-' || {pad} as buyer, \
         'seller-' || ((i * 13) % {SELLERS}) as seller, \
         case ((i * 7) % {BUYERS}) % 3 when 0 then 'auto_insurance' when 1 then 'home_solar' else 'health' end as vertical, \
         500 + (i * 7919) % 4500 as price, \
         ((500 + (i * 7919) % 4500) * (70 + 2 * ((i * 13) % {SELLERS}))) / 100 as payout, \
         {start} + i * {step_us} as at, \
         (i % 20 = 7) as returned, \
         {start} + i * {step_us} + (43200 + (i % 5) * 43200) * 1000000 as return_at \
         from ({series}) s",
        start = start_us(),
    )
}

async fn seed_sqlite(url: &str, o: &Options) -> anyhow::Result<()> {
    let mut db = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc")).await?;
    db.execute("pragma foreign_keys = on; pragma journal_mode = wal; pragma synchronous = normal")
        .await?;
    let step_us = o.days * 86_400_000_000 / o.sales;
    for lo in (0..o.sales).step_by(CHUNK as usize) {
        let hi = (lo + CHUNK).min(o.sales);
        let mut tx = db.begin().await?;
        tx.execute("drop table if exists temp.seed").await?;
        tx.execute(
            format!(
                "create temp table seed as {}",
                seed_select(true, lo, hi, step_us)
            )
            .as_str(),
        )
        .await?;
        for sql in [
            // Entries first, the header last: the schema checks the balance on the header.
            "insert into ledger_entry (transaction_id, account, amount_cents, created_at) \
             select 's_' || i, 'buyer:' || buyer, -price, at from seed \
             union all select 's_' || i, 'seller:' || seller, payout, at from seed \
             union all select 's_' || i, 'exchange:revenue', price - payout, at from seed",
            "insert into ledger_transaction (id, kind, lead_id, reverses, created_at) \
             select 's_' || i, 'sale', 'lead_' || i, null, at from seed",
            "insert into ping (id, seller_id, vertical, lead_json, status, price_cents, payout_cents, \
             created_at, post_state, lead_id) \
             select 'ping_' || i, seller, vertical, '{}', 'sold', price, payout, at, 'done', 'lead_' || i from seed",
            "insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price_cents, payout_cents, \
             transaction_id, created_at) \
             select 'lead_' || i, 'ping_' || i, buyer, seller, vertical, price, payout, 's_' || i, at from seed",
            "insert into ledger_entry (transaction_id, account, amount_cents, created_at) \
             select 'r_' || i, 'buyer:' || buyer, price, return_at from seed where returned \
             union all select 'r_' || i, 'seller:' || seller, -payout, return_at from seed where returned \
             union all select 'r_' || i, 'exchange:revenue', payout - price, return_at from seed where returned",
            "insert into ledger_transaction (id, kind, lead_id, reverses, created_at) \
             select 'r_' || i, 'return', 'lead_' || i, 's_' || i, return_at from seed where returned",
            "insert into lead_return (lead_id, buyer_id, reason, transaction_id, created_at) \
             select 'lead_' || i, buyer, 'bench', 'r_' || i, return_at from seed where returned",
        ] {
            tx.execute(sql).await.with_context(|| sql.to_string())?;
        }
        tx.commit().await?;
    }
    db.execute("analyze").await?;
    Ok(())
}

async fn seed_postgres(url: &str, o: &Options) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(url).await?;
    let step_us = o.days * 86_400_000_000 / o.sales;
    let ts = |column: &str| format!("to_timestamp({column} / 1000000.0)");
    let m = |column: &str| format!("({column} / 100.0)::numeric(14,2)");
    for lo in (0..o.sales).step_by(CHUNK as usize) {
        let hi = (lo + CHUNK).min(o.sales);
        let mut tx = db.begin().await?;
        tx.execute(
            format!(
                "create temp table seed on commit drop as {}",
                seed_select(false, lo, hi, step_us)
            )
            .as_str(),
        )
        .await?;
        let statements = [
            format!(
                "insert into ledger_entry (transaction_id, account, amount, created_at) \
                 select 's_' || i, 'buyer:' || buyer, -{price}, {at} from seed \
                 union all select 's_' || i, 'seller:' || seller, {payout}, {at} from seed \
                 union all select 's_' || i, 'exchange:revenue', {margin}, {at} from seed",
                price = m("price"),
                payout = m("payout"),
                margin = m("(price - payout)"),
                at = ts("at"),
            ),
            format!(
                "insert into ledger_transaction (id, kind, lead_id, reverses, created_at) \
                 select 's_' || i, 'sale', 'lead_' || i, null, {at} from seed",
                at = ts("at")
            ),
            format!(
                "insert into ping (id, seller_id, vertical, lead_json, status, price, payout, \
                 created_at, post_state, lead_id) \
                 select 'ping_' || i, seller, vertical, '{{}}', 'sold', {price}, {payout}, {at}, 'done', \
                 'lead_' || i from seed",
                price = m("price"),
                payout = m("payout"),
                at = ts("at")
            ),
            format!(
                "insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price, payout, \
                 transaction_id, created_at) \
                 select 'lead_' || i, 'ping_' || i, buyer, seller, vertical, {price}, {payout}, 's_' || i, {at} \
                 from seed",
                price = m("price"),
                payout = m("payout"),
                at = ts("at")
            ),
            format!(
                "insert into ledger_entry (transaction_id, account, amount, created_at) \
                 select 'r_' || i, 'buyer:' || buyer, {price}, {at} from seed where returned \
                 union all select 'r_' || i, 'seller:' || seller, -{payout}, {at} from seed where returned \
                 union all select 'r_' || i, 'exchange:revenue', -{margin}, {at} from seed where returned",
                price = m("price"),
                payout = m("payout"),
                margin = m("(price - payout)"),
                at = ts("return_at"),
            ),
            format!(
                "insert into ledger_transaction (id, kind, lead_id, reverses, created_at) \
                 select 'r_' || i, 'return', 'lead_' || i, 's_' || i, {at} from seed where returned",
                at = ts("return_at")
            ),
            format!(
                "insert into lead_return (lead_id, buyer_id, reason, transaction_id, created_at) \
                 select 'lead_' || i, buyer, 'bench', 'r_' || i, {at} from seed where returned",
                at = ts("return_at")
            ),
        ];
        for sql in &statements {
            tx.execute(sql.as_str())
                .await
                .with_context(|| sql.clone())?;
        }
        tx.commit().await?;
    }
    db.execute("vacuum analyze").await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Times the report `runs` times after one warm-up: (min, median, max) in ms, and the rows.
async fn time_report(
    store: &DynStore,
    period: Period,
    group: RevenueGroup,
    runs: usize,
) -> anyhow::Result<(f64, f64, f64, usize, String)> {
    let mut times = Vec::new();
    let mut rows = 0;
    let mut totals = String::new();
    for run in 0..=runs {
        let started = Instant::now();
        let report = revenue_report(&**store, "USD", period, group).await?;
        let body = report.render(Format::Json)?;
        let elapsed = started.elapsed();
        if run > 0 {
            times.push(ms(elapsed));
        }
        rows = report.rows.len();
        totals = serde_json::to_string(&report.totals)?;
        std::hint::black_box(body);
    }
    times.sort_by(f64::total_cmp);
    Ok((
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        rows,
        totals,
    ))
}

async fn bench(name: &str, store: DynStore, o: &Options) -> anyhow::Result<()> {
    let rollup_started = Instant::now();
    store.rebuild_revenue_rollup().await?;
    println!(
        "{name}: rollup built from the ledger in {:.1} s",
        rollup_started.elapsed().as_secs_f64()
    );
    // The whole seeded period, plus the days the last returns fall on.
    let period = |tz: &str| -> anyhow::Result<Period> {
        Ok(Period {
            from: start_date(),
            to: start_date() + chrono::Duration::days(o.days + 2),
            tz: tz.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        })
    };
    println!("\n| backend | group_by | tz | rows | min ms | median ms | max ms |");
    println!("|---|---|---|---:|---:|---:|---:|");
    let mut all_totals = Vec::new();
    for (group, tz) in [
        (RevenueGroup::Day, "UTC"),
        (RevenueGroup::Buyer, "UTC"),
        (RevenueGroup::Seller, "UTC"),
        (RevenueGroup::Vertical, "UTC"),
        (RevenueGroup::Day, "America/New_York"),
    ] {
        let (min, median, max, rows, totals) =
            time_report(&store, period(tz)?, group, o.runs).await?;
        println!(
            "| {name} | {} | {tz} | {rows} | {min:.1} | {median:.1} | {max:.1} |",
            group.as_str()
        );
        if tz == "UTC" {
            all_totals.push(totals);
        }
    }
    // A zone with a half-hour offset cannot use hourly buckets: the report reads the ledger.
    let (min, _, _, rows, _) =
        time_report(&store, period("Asia/Kolkata")?, RevenueGroup::Day, 1).await?;
    println!("| {name} | day (from the ledger) | Asia/Kolkata | {rows} | {min:.1} | | |");
    anyhow::ensure!(
        all_totals.windows(2).all(|w| w[0] == w[1]),
        "the totals differ between groupings: {all_totals:?}"
    );
    println!("\n{name}: totals of every grouping: {}", all_totals[0]);

    // The rollup against the ledger it summarises, for the whole period, per buyer.
    let p = period("UTC")?;
    let query = |source| RevenueQuery {
        dimension: RevenueDimension::Buyer,
        start: p.start(),
        end: p.end(),
        bucket_s: None,
        source,
    };
    let mut rollup = store.revenue(&query(RevenueSource::Rollup)).await?;
    let started = Instant::now();
    let mut ledger = store.revenue(&query(RevenueSource::Ledger)).await?;
    let ledger_ms = ms(started.elapsed());
    rollup.sort_by(|a, b| a.group.cmp(&b.group));
    ledger.sort_by(|a, b| a.group.cmp(&b.group));
    anyhow::ensure!(
        rollup == ledger,
        "{name}: the rollup does not match the ledger"
    );
    println!(
        "{name}: rollup = ledger for every buyer, to the cent (the same report straight from the ledger: {ledger_ms:.0} ms)"
    );

    // The ledger export of one day, streamed.
    let day = Period {
        from: start_date() + chrono::Duration::days(10),
        to: start_date() + chrono::Duration::days(10),
        tz: chrono_tz::UTC,
    };
    let started = Instant::now();
    let stream = pingpost::reports::ledger_export(store.clone(), day, Format::Csv, "USD").await?;
    let (chunks, bytes) = collect_len(stream).await?;
    println!(
        "{name}: ledger export of one day as CSV: {bytes} bytes in {chunks} chunks, {:.0} ms\n",
        ms(started.elapsed())
    );
    Ok(())
}

/// Drains a body stream: how many chunks and bytes it gave.
async fn collect_len<S, E>(stream: S) -> anyhow::Result<(usize, usize)>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut stream = std::pin::pin!(stream);
    let (mut chunks, mut bytes) = (0, 0);
    while let Some(chunk) = stream.next().await {
        chunks += 1;
        bytes += chunk?.len();
    }
    Ok((chunks, bytes))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    println!(
        "seeding {} sales over {} days ({} buyers, {} sellers, 3 verticals, 5% returned)",
        o.sales, o.days, BUYERS, SELLERS
    );
    if o.sqlite {
        let dir = std::env::temp_dir().join(format!("pingpost-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let url = format!("sqlite://{}", dir.join("bench.db").display());
        let store = pingpost::store::connect(&url).await?;
        store.migrate().await?;
        let started = Instant::now();
        seed_sqlite(&url, &o).await?;
        println!("sqlite: seeded in {:.1} s", started.elapsed().as_secs_f64());
        let result = bench("sqlite", store, &o).await;
        std::fs::remove_dir_all(&dir).ok();
        result?;
    }
    if o.postgres {
        let server = std::env::var("PINGPOST_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let name = format!("pingpost_bench_{:08x}", rand::random::<u32>());
        let mut admin = sqlx::PgConnection::connect(&server).await?;
        admin
            .execute(format!("create database {name}").as_str())
            .await?;
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => anyhow::bail!("PINGPOST_BENCH_DATABASE_URL needs a database name"),
        };
        let result = async {
            let store = pingpost::store::connect(&url).await?;
            store.migrate().await?;
            let started = Instant::now();
            seed_postgres(&url, &o).await?;
            println!(
                "postgres: seeded in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            bench("postgres", store, &o).await
        }
        .await;
        admin
            .execute(format!("drop database if exists {name} with (force)").as_str())
            .await
            .ok();
        result?;
    }
    Ok(())
}
