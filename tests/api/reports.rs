//! Finance reports: revenue, the ledger export and auction statistics tie out to the ledger
//! to the cent, in JSON and CSV, in any time zone, for finance keys only.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::*;

const SOLAR: &str = "\n[[verticals]]\nid = \"home_solar\"\nfloor = \"5.00\"\nfields = [\n  { name = \"zip\", type = \"zip\", required = true },\n  { name = \"state\", type = \"us_state\", required = true },\n  { name = \"first_name\", type = \"string\", pii = true, required = true },\n  { name = \"last_name\", type = \"string\", pii = true, required = true },\n  { name = \"email\", type = \"email\", pii = true, required = true },\n  { name = \"phone\", type = \"phone\", pii = true, required = true },\n]\n";

struct Books {
    app: TestApp,
    b1: TestBuyer,
    /// Each lead sold, with its vertical: the one fact a report needs that the ledger lacks.
    verticals: HashMap<String, String>,
}

async fn books() -> Books {
    let b1 = TestBuyer::start(Reply::bid("15.00"), Reply::accept()).await;
    let b2 = TestBuyer::start(Reply::bid("9.99"), Reply::accept()).await;
    let b3 = TestBuyer::start(Reply::bid("23.45"), Reply::accept()).await;
    let (_, solar) = pinged_buyer("b3", &b3, "");
    let solar = solar.replace("[\"auto_insurance\"]", "[\"home_solar\"]");
    let exchange = format!("{}{SOLAR}", exchange_toml("", "tmax_ms = 1000"));
    let app = spawn_app_with(
        &exchange,
        &[
            pinged_buyer("b1", &b1, ""),
            pinged_buyer("b2", &b2, ""),
            ("b3".to_string(), solar),
        ],
    )
    .await;
    Books {
        app,
        b1,
        verticals: HashMap::new(),
    }
}

impl Books {
    /// A direct post that must sell: returns the lead id.
    async fn sell(&mut self, seller_key: &str, vertical: &str) -> String {
        let mut lead = full_lead();
        if vertical == "home_solar" {
            let object = lead.as_object_mut().unwrap();
            for field in ["age", "homeowner", "coverage", "address"] {
                object.remove(field);
            }
        }
        let (status, body) = self
            .app
            .send(
                "/v1/leads",
                seller_key,
                &json!({"vertical": vertical, "lead": lead}),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("sold")),
            "{body}"
        );
        let lead_id = body["lead_id"].as_str().unwrap().to_string();
        self.verticals.insert(lead_id.clone(), vertical.to_string());
        lead_id
    }

    async fn give_back(&self, buyer: &str, lead_id: &str) {
        let (status, body) = self
            .app
            .send(
                "/v1/returns",
                &buyer_key(buyer),
                &json!({"lead_id": lead_id, "reason": "bad_phone"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn get_text(&self, path: &str) -> (u16, String, String) {
        let response = self.app.get(path, FINANCE_KEY).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, content_type, response.text().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, _, text) = self.get_text(path).await;
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// Six sales over two days, from two sellers to three buyers in two verticals, and three
/// returns, one of them of the first day's sale on the second day.
async fn two_days_of_books() -> Books {
    let mut books = books().await;
    let first = books.sell(SELLER_A_KEY, "auto_insurance").await; // b1 15.00
    books.sell(SELLER_B_KEY, "auto_insurance").await; // b1 15.00
    books.b1.set_bid(Reply::no_bid());
    let third = books.sell(SELLER_A_KEY, "auto_insurance").await; // b2 9.99
    books.sell(SELLER_B_KEY, "home_solar").await; // b3 23.45
    books.give_back("b1", &first).await;
    books
        .app
        .exchange
        .advance_clock(Duration::days(1) + Duration::hours(1));
    books.b1.set_bid(Reply::bid("20.01"));
    books.sell(SELLER_B_KEY, "auto_insurance").await; // b1 20.01
    let solar = books.sell(SELLER_A_KEY, "home_solar").await; // b3 23.45
    books.give_back("b2", &third).await;
    books.give_back("b3", &solar).await;
    books
}

fn range(books: &Books) -> String {
    let today = books.app.exchange.now().date_naive();
    format!(
        "from={}&to={}",
        today - Duration::days(2),
        today + Duration::days(1)
    )
}

/// "-12.34" as -1234: parsed here by hand, not by the exchange's money code.
fn cents(text: &str) -> i64 {
    let (sign, digits) = text.strip_prefix('-').map_or((1, text), |rest| (-1, rest));
    let (whole, fraction) = digits.split_once('.').expect("two decimals");
    assert_eq!(fraction.len(), 2, "{text}");
    sign * (whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap())
}

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
async fn the_ledger_export_is_the_same_in_csv_in_json_and_page_by_page() {
    let books = two_days_of_books().await;
    let range = range(&books);
    let json_export = books.get_json(&format!("/v1/reports/ledger?{range}")).await;
    let (status, content_type, text) = books
        .get_text(&format!("/v1/reports/ledger?{range}&format=csv"))
        .await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"));

    let entries = json_export["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 27, "three entries per transaction");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let columns = [
        "transaction_id",
        "time",
        "kind",
        "account",
        "amount",
        "lead_id",
    ];
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        columns
    );
    let csv_entries: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let json_entries: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            columns
                .iter()
                .map(|c| e[c].as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    assert_eq!(csv_entries, json_entries);
    let sum: i64 = json_entries.iter().map(|e| cents(&e[4])).sum();
    assert_eq!(sum, 0, "the books balance");
    // The same as the test database's own ledger, entry for entry.
    let db: Vec<(String, String, i64)> = ledger_entries(&books.app).await;
    let exported: Vec<(String, String, i64)> = json_entries
        .iter()
        .map(|e| (e[0].clone(), e[3].clone(), cents(&e[4])))
        .collect();
    let mut sorted_db = db.clone();
    sorted_db.sort();
    let mut sorted_exported = exported.clone();
    sorted_exported.sort();
    assert_eq!(sorted_exported, sorted_db);

    // Read two entries at a time, the stream is the same document.
    let period = pingpost::reports::Period {
        from: json_export["from"].as_str().unwrap().parse().unwrap(),
        to: json_export["to"].as_str().unwrap().parse().unwrap(),
        tz: chrono_tz::UTC,
    };
    for (format, whole) in [
        (pingpost::reports::Format::Json, json_export.to_string()),
        (pingpost::reports::Format::Csv, text.clone()),
    ] {
        use futures_util::StreamExt;
        let stream = pingpost::reports::ledger::ledger_export_paged(
            books.app.exchange.store.clone(),
            period,
            format,
            "USD",
            2,
        )
        .await
        .unwrap();
        let chunks: Vec<_> = stream.collect().await;
        assert!(chunks.len() > 10, "one chunk per page");
        let paged: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        let paged = String::from_utf8(paged).unwrap();
        match format {
            pingpost::reports::Format::Json => assert_eq!(
                serde_json::from_str::<Value>(&paged).unwrap().to_string(),
                whole
            ),
            pingpost::reports::Format::Csv => assert_eq!(paged, whole),
        }
    }
    // An empty range is an empty, valid document.
    let empty = books
        .get_json("/v1/reports/ledger?from=2020-01-01&to=2020-01-31")
        .await;
    assert_eq!(empty["entries"], json!([]));
}

#[tokio::test]
async fn auction_statistics_count_bids_wins_and_posts() {
    let b1 = TestBuyer::start(Reply::bid("15.00"), Reply::reject()).await;
    let b2 = TestBuyer::start(Reply::bid("10.00"), Reply::accept()).await;
    let b3 = TestBuyer::start(Reply::no_bid(), Reply::accept()).await;
    let app = spawn_app(&[
        pinged_buyer("b1", &b1, ""),
        pinged_buyer("b2", &b2, ""),
        pinged_buyer("b3", &b3, ""),
    ])
    .await;
    // Twice: b1 wins, rejects the post, and b2 takes the lead.
    for _ in 0..2 {
        let (status, body) = app
            .send(
                "/v1/leads",
                SELLER_A_KEY,
                &json!({"vertical": "auto_insurance", "lead": full_lead()}),
            )
            .await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("sold")),
            "{body}"
        );
    }
    // Once more, a ping with no post: b2 bids below this seller-b floor of 12.00.
    let (status, _) = app
        .ping(
            SELLER_B_KEY,
            &json!({"vertical": "auto_insurance", "lead": ping_lead(), "floor": "12.00"}),
        )
        .await;
    assert_eq!(status, 200);
    let today = app.exchange.now().date_naive();
    let range = format!(
        "from={}&to={}",
        today - Duration::days(1),
        today + Duration::days(1)
    );

    let by_buyer: Value = app
        .get(
            &format!("/v1/reports/auctions?{range}&group_by=buyer"),
            FINANCE_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    let by_seller: Value = app
        .get(
            &format!("/v1/reports/auctions?{range}&group_by=seller"),
            FINANCE_KEY,
        )
        .await
        .json()
        .await
        .unwrap();

    let row = |report: &Value, group: &str| -> Value {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["group"] == group)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let b1_row = row(&by_buyer, "b1");
    assert_eq!(
        (
            b1_row["pings"].as_i64(),
            b1_row["bids"].as_i64(),
            b1_row["wins"].as_i64()
        ),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(b1_row["average_bid"], "15.00");
    assert_eq!(b1_row["bid_rate"], 1.0);
    assert_eq!(
        (
            b1_row["posts_accepted"].as_i64(),
            b1_row["posts_rejected"].as_i64()
        ),
        (Some(0), Some(2))
    );
    assert_eq!(b1_row["post_accept_rate"], 0.0);
    let b2_row = row(&by_buyer, "b2");
    assert_eq!(
        (
            b2_row["bids"].as_i64(),
            b2_row["below_floor"].as_i64(),
            b2_row["wins"].as_i64()
        ),
        (Some(3), Some(1), Some(0))
    );
    assert_eq!(b2_row["posts_accepted"], 2);
    assert_eq!(b2_row["post_accept_rate"], 1.0);
    let b3_row = row(&by_buyer, "b3");
    assert_eq!(
        (b3_row["bids"].as_i64(), b3_row["no_bids"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(b3_row["bid_rate"], 0.0);
    assert_eq!(b3_row["average_bid"], Value::Null);
    let a = row(&by_seller, "seller-a");
    assert_eq!(
        (
            a["pings"].as_i64(),
            a["bid_requests"].as_i64(),
            a["wins"].as_i64()
        ),
        (Some(2), Some(6), Some(2))
    );
    assert_eq!(
        (a["posts_accepted"].as_i64(), a["posts_rejected"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(row(&by_seller, "seller-b")["pings"], 1);

    let csv_text = app
        .get(
            &format!("/v1/reports/auctions?{range}&group_by=vertical&format=csv"),
            FINANCE_KEY,
        )
        .await
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(&records[0][0], "auto_insurance");
    assert_eq!(&records[0][1], "3", "three pings in the vertical");
}

#[tokio::test]
async fn reports_are_for_finance_keys_only() {
    let b1 = TestBuyer::start(Reply::bid("15.00"), Reply::accept()).await;
    let app = spawn_app(&[pinged_buyer("b1", &b1, "")]).await;
    let query = "from=2026-01-01&to=2026-01-31";
    let b1_key = buyer_key("b1");
    for path in [
        format!("/v1/reports/revenue?{query}&group_by=day"),
        format!("/v1/reports/revenue?{query}&group_by=buyer&format=csv"),
        format!("/v1/reports/ledger?{query}"),
        format!("/v1/reports/ledger?{query}&format=csv"),
        format!("/v1/reports/auctions?{query}&group_by=seller"),
    ] {
        let url = format!("{}{path}", app.address);
        let status = |request: reqwest::RequestBuilder| async move {
            request.send().await.unwrap().status().as_u16()
        };
        assert_eq!(status(app.http.get(&url)).await, 401, "{path}: no key");
        assert_eq!(
            status(app.http.get(&url).bearer_auth("not-a-key-0000000000")).await,
            401,
            "{path}: unknown key"
        );
        assert_eq!(
            status(app.http.get(&url).basic_auth("finance", Some(FINANCE_KEY))).await,
            401,
            "{path}: not Bearer"
        );
        for (who, key) in [
            ("seller", SELLER_A_KEY),
            ("buyer", b1_key.as_str()),
            ("admin", ADMIN_KEY),
        ] {
            let response = app.get(&path, key).await;
            assert_eq!(response.status(), 403, "{path}: {who} key");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "forbidden");
        }
        assert_eq!(app.get(&path, FINANCE_KEY).await.status(), 200, "{path}");
    }
    let (status, _) = app.ping(FINANCE_KEY, &ping_body()).await;
    assert_eq!(status, 403, "a finance key cannot ping");
}

#[tokio::test]
async fn a_bad_report_query_is_422_naming_each_field() {
    let app = spawn_app(&[]).await;
    let fields = |path: &'static str| {
        let app = &app;
        async move {
            let response = app.get(path, FINANCE_KEY).await;
            assert_eq!(response.status(), 422, "{path}");
            let body: Value = response.json().await.unwrap();
            let mut names: Vec<String> = body["error"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap().to_string())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(
        fields("/v1/reports/revenue?from=2026-01-01&to=2026-01-31").await,
        ["group_by"]
    );
    assert_eq!(
        fields("/v1/reports/revenue?from=2026-01-01&to=2026-13-01&group_by=week&format=xml&tz=Mars/Olympus").await,
        ["format", "group_by", "to", "tz"]
    );
    assert_eq!(
        fields("/v1/reports/ledger?from=2026-02-01&to=2026-01-01").await,
        ["to"]
    );
    assert_eq!(
        fields("/v1/reports/ledger?from=2025-01-01&to=2026-01-31").await,
        ["to"]
    );
    assert_eq!(
        fields("/v1/reports/auctions?to=2026-01-01&group_by=day").await,
        ["from", "group_by"]
    );
}

#[tokio::test]
async fn the_dashboard_and_its_assets_come_from_the_binary() {
    let app = spawn_app(&[]).await;
    for (path, content_type, marker) in [
        ("/dashboard", "text/html", "/dashboard/app.js"),
        (
            "/dashboard/app.js",
            "text/javascript",
            "/v1/reports/revenue",
        ),
        ("/dashboard/app.css", "text/css", "#chart"),
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert!(header("content-security-policy").contains("script-src 'self'"));
        let body = response.text().await.unwrap();
        assert!(body.contains(marker), "{path}");
        assert!(
            !body.contains("://cdn"),
            "{path}: nothing from another origin"
        );
    }
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
        "drop index bid_created",
        "drop index post_attempt_created",
        "delete from _sqlx_migrations where version = 2",
    ] {
        books.app.db.rows(sql, sql).await;
    }
    store.migrate().await.unwrap();

    assert_eq!(snapshot().await, kept_up);
}
