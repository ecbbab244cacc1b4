//! Finance reports: every revenue report ties out to the ledger export to the cent, in JSON
//! and CSV, in any time zone; the rollup it reads equals the ledger it summarises.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::report_books::*;

fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// leads_sold, gross, payouts, margin, returns, returned_amount, net_margin.
type Metrics = [i64; 7];

fn to_strings(m: &Metrics) -> Vec<String> {
    vec![
        m[0].to_string(),
        money(m[1]),
        money(m[2]),
        money(m[3]),
        m[4].to_string(),
        money(m[5]),
        money(m[6]),
    ]
}

/// The group a transaction counts in, worked out from the ledger export.
type GroupOf = Box<dyn Fn(&Txn) -> String>;

/// One ledger transaction as the export shows it.
struct Txn {
    kind: String,
    time: DateTime<Utc>,
    lead_id: String,
    amounts: BTreeMap<String, i64>,
}

fn transactions(export: &Value) -> Vec<Txn> {
    let mut by_id: BTreeMap<String, Txn> = BTreeMap::new();
    for e in export["entries"].as_array().unwrap() {
        let txn = by_id
            .entry(e["transaction_id"].as_str().unwrap().to_string())
            .or_insert_with(|| Txn {
                kind: e["kind"].as_str().unwrap().to_string(),
                time: e["time"].as_str().unwrap().parse().unwrap(),
                lead_id: e["lead_id"].as_str().unwrap().to_string(),
                amounts: BTreeMap::new(),
            });
        *txn.amounts
            .entry(e["account"].as_str().unwrap().to_string())
            .or_default() += cents(e["amount"].as_str().unwrap());
    }
    by_id.into_values().collect()
}

/// The revenue report computed from the ledger export alone: rows by group, and totals.
fn expected(
    txns: &[Txn],
    group_of: &dyn Fn(&Txn) -> String,
) -> (BTreeMap<String, Metrics>, Metrics) {
    let mut rows: BTreeMap<String, Metrics> = BTreeMap::new();
    let mut totals = [0; 7];
    for t in txns {
        let pick = |prefix: &str| -> i64 {
            t.amounts
                .iter()
                .filter(|(a, _)| a.starts_with(prefix))
                .map(|(_, c)| c)
                .sum()
        };
        let (buyer, seller, exchange) = (pick("buyer:"), pick("seller:"), pick("exchange:"));
        assert_eq!(buyer + seller + exchange, 0, "a transaction balances");
        let delta = if t.kind == "sale" {
            [1, -buyer, seller, exchange, 0, 0, exchange]
        } else {
            [0, 0, 0, 0, 1, buyer, exchange]
        };
        for m in [rows.entry(group_of(t)).or_default(), &mut totals] {
            for (slot, d) in m.iter_mut().zip(delta) {
                *slot += d;
            }
        }
    }
    (rows, totals)
}

fn account_of(t: &Txn, prefix: &str) -> String {
    t.amounts
        .keys()
        .find_map(|a| a.strip_prefix(prefix))
        .unwrap()
        .to_string()
}

fn json_rows(report: &Value) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let fields = [
        "leads_sold",
        "gross",
        "payouts",
        "margin",
        "returns",
        "returned_amount",
        "net_margin",
    ];
    let metrics = |v: &Value| -> Vec<String> {
        fields
            .iter()
            .map(|f| match &v[f] {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_i64() => n.to_string(),
                other => panic!("{f} is {other}"),
            })
            .collect()
    };
    let rows = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["group"].as_str().unwrap().to_string(), metrics(r)))
        .collect();
    (rows, metrics(&report["totals"]))
}

fn csv_rows(text: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "group",
            "leads_sold",
            "gross",
            "payouts",
            "margin",
            "returns",
            "returned_amount",
            "net_margin"
        ]
    );
    let mut rows: Vec<(String, Vec<String>)> = reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed CSV record");
            (
                r[0].to_string(),
                r.iter().skip(1).map(str::to_string).collect(),
            )
        })
        .collect();
    let (group, totals) = rows.pop().expect("a totals row");
    assert_eq!(group, "total", "the last row is the totals");
    (rows.into_iter().collect(), totals)
}

#[tokio::test]
async fn every_revenue_report_ties_out_to_the_ledger_export_in_json_and_csv() {
    let books = two_days_of_books().await;
    let range = range(&books);
    let export = books.get_json(&format!("/v1/reports/ledger?{range}")).await;
    let txns = transactions(&export);
    assert_eq!(txns.len(), 9, "six sales and three returns");
    let verticals = books.verticals.clone();
    let groupings: [(&str, GroupOf); 4] = [
        ("day", Box::new(|t| t.time.format("%Y-%m-%d").to_string())),
        ("buyer", Box::new(|t| account_of(t, "buyer:"))),
        ("seller", Box::new(|t| account_of(t, "seller:"))),
        ("vertical", Box::new(move |t| verticals[&t.lead_id].clone())),
    ];

    for (group_by, group_of) in groupings {
        let (rows, totals) = expected(&txns, &*group_of);
        let rows: BTreeMap<String, Vec<String>> = rows
            .iter()
            .map(|(g, m)| (g.clone(), to_strings(m)))
            .collect();
        let totals = to_strings(&totals);

        let report = books
            .get_json(&format!("/v1/reports/revenue?{range}&group_by={group_by}"))
            .await;
        assert_eq!(report["group_by"], group_by);
        assert_eq!(report["currency"], "USD");
        assert_eq!(
            json_rows(&report),
            (rows.clone(), totals.clone()),
            "{group_by} JSON"
        );

        let (status, content_type, text) = books
            .get_text(&format!(
                "/v1/reports/revenue?{range}&group_by={group_by}&format=csv"
            ))
            .await;
        assert_eq!(status, 200, "{text}");
        assert!(content_type.starts_with("text/csv"), "{content_type}");
        assert!(text.ends_with("\r\n"));
        assert_eq!(csv_rows(&text), (rows, totals), "{group_by} CSV");
    }

    // The sums above are the ledger's; these are the sales as made.
    let report = books
        .get_json(&format!("/v1/reports/revenue?{range}&group_by=buyer"))
        .await;
    assert_eq!(
        report["totals"],
        json!({"leads_sold": 6, "gross": "106.90", "payouts": "82.58", "margin": "24.32",
               "returns": 3, "returned_amount": "48.44", "net_margin": "14.63"})
    );
    let groups: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["group"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["b1", "b2", "b3"]);
}

#[tokio::test]
async fn the_rollup_equals_the_ledger_and_a_rebuild_changes_nothing() {
    use pingpost::store::{RevenueDimension, RevenueQuery, RevenueSource};
    let books = two_days_of_books().await;
    let store = &books.app.exchange.store;
    let now = books.app.exchange.now();
    let query = |dimension, bucket_s, source| RevenueQuery {
        dimension,
        start: pingpost::store::hour_start(now) - Duration::days(3),
        end: pingpost::store::hour_start(now) + Duration::hours(1),
        bucket_s,
        source,
    };
    let read = |dimension, bucket_s, source| {
        let q = query(dimension, bucket_s, source);
        async move {
            let mut cells = store.revenue(&q).await.unwrap();
            cells.sort_by(|a, b| (a.bucket, &a.group).cmp(&(b.bucket, &b.group)));
            cells
        }
    };
    for dimension in [
        RevenueDimension::All,
        RevenueDimension::Buyer,
        RevenueDimension::Seller,
        RevenueDimension::Vertical,
    ] {
        for bucket_s in [None, Some(3_600)] {
            let ledger = read(dimension, bucket_s, RevenueSource::Ledger).await;
            let rollup = read(dimension, bucket_s, RevenueSource::Rollup).await;
            assert!(!ledger.is_empty());
            assert_eq!(rollup, ledger, "{dimension:?} {bucket_s:?}");
        }
    }
    let before = read(RevenueDimension::Buyer, Some(3_600), RevenueSource::Rollup).await;
    store.rebuild_revenue_rollup().await.unwrap();
    let after = read(RevenueDimension::Buyer, Some(3_600), RevenueSource::Rollup).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn day_boundaries_follow_the_time_zone() {
    let mut books = books().await;
    let clock = &books.app.exchange;
    // To 02:00:30 UTC of the next day, then a sale; another at 20:00:30 UTC the same day.
    let now = clock.now();
    let day = now.date_naive() + Duration::days(1);
    let two_am = day.and_hms_opt(2, 0, 30).unwrap().and_utc();
    clock.advance_clock(two_am - now);
    books.sell(SELLER_A_KEY, "auto_insurance").await;
    books.app.exchange.advance_clock(Duration::hours(18));
    books.sell(SELLER_A_KEY, "auto_insurance").await;
    let (before, after) = (day - Duration::days(1), day + Duration::days(1));
    let days = |report: Value| -> Vec<(String, i64)> {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["group"].as_str().unwrap().to_string(),
                    r["leads_sold"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let report =
        |tz: &str| format!("/v1/reports/revenue?from={before}&to={after}&group_by=day&tz={tz}");

    let utc = books.get_json(&report("UTC")).await;
    let new_york = books.get_json(&report("America/New_York")).await;
    let kolkata = books.get_json(&report("Asia/Kolkata")).await;

    assert_eq!(days(utc), [(day.to_string(), 2)]);
    // 02:00 UTC is the evening before in New York; 20:00 UTC is the afternoon of the day.
    assert_eq!(
        days(new_york.clone()),
        [(before.to_string(), 1), (day.to_string(), 1)]
    );
    assert_eq!(new_york["tz"], "America/New_York");
    // 20:00 UTC is 01:30 the next morning in India (+05:30: read from the ledger).
    assert_eq!(
        days(kolkata.clone()),
        [(day.to_string(), 1), (after.to_string(), 1)]
    );
    assert_eq!(kolkata["totals"]["gross"], "30.00");
    // A one-day report in New York holds only the sale of that New York day.
    let one_day = books
        .get_json(&format!(
            "/v1/reports/revenue?from={day}&to={day}&group_by=buyer&tz=America/New_York"
        ))
        .await;
    assert_eq!(one_day["totals"]["leads_sold"], 1);
}

#[tokio::test]
async fn migration_0002_builds_the_rollup_of_books_that_exist_already() {
    use pingpost::store::{RevenueDimension, RevenueQuery, RevenueSource};
    let books = two_days_of_books().await;
    let store = &books.app.exchange.store;
    let now = books.app.exchange.now();
    let snapshot = || async {
        let mut all = Vec::new();
        for dimension in [
            RevenueDimension::All,
            RevenueDimension::Buyer,
            RevenueDimension::Seller,
            RevenueDimension::Vertical,
        ] {
            let query = RevenueQuery {
                dimension,
                start: now - Duration::days(3),
                end: now + Duration::days(1),
                bucket_s: Some(3_600),
                source: RevenueSource::Rollup,
            };
            let mut cells = store.revenue(&query).await.unwrap();
            cells.sort_by(|a, b| (a.bucket, &a.group).cmp(&(b.bucket, &b.group)));
            all.push(cells);
        }
        all
    };
    let kept_up = snapshot().await;
    assert!(kept_up.iter().all(|cells| !cells.is_empty()));

    // Back to the schema before 0002, with the books as they are, and migrate again.
    for sql in [
        "drop table revenue_hourly",
        "drop index ledger_entry_created",
        // Gone from SQLite's bid log since migration 0006 (which runs again below).
        "drop index if exists bid_created",
        "drop index post_attempt_created",
        "delete from _sqlx_migrations where version >= 2",
    ] {
        books.app.db.rows(sql, sql).await;
    }
    store.migrate().await.unwrap();

    assert_eq!(snapshot().await, kept_up);
}
