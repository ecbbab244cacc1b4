//! Books for the finance report tests: sales and returns made through the API over two days,
//! and a parser for the money the reports print.

use std::collections::HashMap;

use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::*;

const SOLAR: &str = "\n[[verticals]]\nid = \"home_solar\"\nfloor = \"5.00\"\nfields = [\n  { name = \"zip\", type = \"zip\", required = true },\n  { name = \"state\", type = \"us_state\", required = true },\n  { name = \"first_name\", type = \"string\", pii = true, required = true },\n  { name = \"last_name\", type = \"string\", pii = true, required = true },\n  { name = \"email\", type = \"email\", pii = true, required = true },\n  { name = \"phone\", type = \"phone\", pii = true, required = true },\n]\n";

pub struct Books {
    pub app: TestApp,
    pub b1: TestBuyer,
    /// Each lead sold, with its vertical: the one fact a report needs that the ledger lacks.
    pub verticals: HashMap<String, String>,
}

pub async fn books() -> Books {
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
    pub async fn sell(&mut self, seller_key: &str, vertical: &str) -> String {
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

    pub async fn give_back(&self, buyer: &str, lead_id: &str) {
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

    pub async fn get_text(&self, path: &str) -> (u16, String, String) {
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

    pub async fn get_json(&self, path: &str) -> Value {
        let (status, _, text) = self.get_text(path).await;
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// Six sales over two days, from two sellers to three buyers in two verticals, and three
/// returns, one of them of the first day's sale on the second day.
pub async fn two_days_of_books() -> Books {
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

pub fn range(books: &Books) -> String {
    let today = books.app.exchange.now().date_naive();
    format!(
        "from={}&to={}",
        today - Duration::days(2),
        today + Duration::days(1)
    )
}

/// "-12.34" as -1234: parsed here by hand, not by the exchange's money code.
pub fn cents(text: &str) -> i64 {
    let (sign, digits) = text.strip_prefix('-').map_or((1, text), |rest| (-1, rest));
    let (whole, fraction) = digits.split_once('.').expect("two decimals");
    assert_eq!(fraction.len(), 2, "{text}");
    sign * (whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap())
}
