//! The ledger export (streamed, JSON and CSV) and the auction statistics.

use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::report_books::*;

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
