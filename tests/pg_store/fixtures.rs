//! Fixtures: a fresh database of either kind with a store on it and a direct SQL client,
//! and the pings, sales and returns the scenarios record.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::FutureExt;
use pingpost::domain::Money;
use pingpost::ledger::{SaleAmounts, Transaction, EXCHANGE_REVENUE};
use pingpost::store::{
    BidRecord, DynStore, NewPing, NewReturn, NewSale, PgStore, PingStatus, PostAttempt, Store,
};
use rust_decimal::Decimal;
use sqlx::{Connection, Executor, PgConnection, PgPool, SqlitePool};

const URL_VAR: &str = "PINGPOST_TEST_DATABASE_URL";

/// A client of the same database that goes around the store, as an operator's psql would.
pub enum Sql {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

/// One fresh database: the store under test, and a direct client of the same database.
pub struct Books {
    pub store: DynStore,
    pub sql: Sql,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// `server` with its database name replaced by `name`, query string kept.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

fn migration_files(backend: &str) -> i64 {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    let files = std::fs::read_dir(dir).expect("reading the migrations folder");
    files
        .filter(|f| {
            f.as_ref()
                .is_ok_and(|f| f.path().extension().is_some_and(|e| e == "sql"))
        })
        .count() as i64
}

/// Runs `body` on a fresh, twice-migrated PostgreSQL database and drops the database after,
/// whether the body passed or panicked.
pub async fn with_fresh_pg<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Books) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(server) = std::env::var(URL_VAR) else {
        println!("skipped {test}: {URL_VAR} is not set");
        return;
    };
    let name = format!("pingpost_t_{:016x}", rand::random::<u64>());
    let mut admin = PgConnection::connect(&server)
        .await
        .expect("connecting to the test server");
    admin
        .execute(format!("create database {name}").as_str())
        .await
        .expect("creating the test database");
    let url = with_database(&server, &name);
    let outcome = AssertUnwindSafe(async { body(fresh_pg(url).await).await })
        .catch_unwind()
        .await;
    // `with (force)` closes the connections the test left open.
    admin
        .execute(format!("drop database {name} with (force)").as_str())
        .await
        .expect("dropping the test database");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure);
    }
}

/// A `PgStore` on `url`: the store `fresh_pg` migrates, and the handle for the
/// PostgreSQL-only calls a test makes beside `Books::store`.
pub async fn pg_store(url: &str) -> PgStore {
    PgStore::connect(url, 4, Duration::from_secs(10))
        .await
        .expect("building the pool")
}

async fn fresh_pg(url: String) -> Books {
    let store = pg_store(&url).await;
    store.migrate().await.expect("migrating");
    store
        .migrate()
        .await
        .expect("migrating again changes nothing");
    let sql = PgPool::connect(&url).await.expect("connecting directly");
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
        .fetch_one(&sql)
        .await
        .unwrap();
    assert_eq!(
        applied,
        migration_files("postgres"),
        "each migration is applied once"
    );
    Books {
        store: std::sync::Arc::new(store),
        sql: Sql::Pg(sql),
        url,
        _dir: None,
    }
}

pub async fn fresh_sqlite() -> Books {
    let dir = tempfile::tempdir().expect("making a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("books.db").display());
    let store = pingpost::store::connect(&url)
        .await
        .expect("opening SQLite");
    store.migrate().await.expect("migrating");
    store
        .migrate()
        .await
        .expect("migrating again changes nothing");
    let sql = SqlitePool::connect(&url)
        .await
        .expect("connecting directly");
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations")
        .fetch_one(&sql)
        .await
        .unwrap();
    assert_eq!(
        applied,
        migration_files("sqlite"),
        "each migration is applied once"
    );
    Books {
        store,
        sql: Sql::Sqlite(sql),
        url,
        _dir: Some(dir),
    }
}

impl Sql {
    /// The statements in one database transaction: all of them commit, or none.
    pub async fn all_or_nothing(&self, statements: &[String]) -> Result<(), sqlx::Error> {
        match self {
            Sql::Pg(pool) => {
                let mut tx = pool.begin().await?;
                for s in statements {
                    sqlx::raw_sql(s).execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            Sql::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                for s in statements {
                    sqlx::raw_sql(s).execute(&mut *tx).await?;
                }
                tx.commit().await
            }
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        match self {
            Sql::Pg(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Sql::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("counting")
    }

    /// What the books hold: (sales, ledger transactions, ledger entries).
    pub async fn books(&self) -> (i64, i64, i64) {
        (
            self.count("select count(*) from sale").await,
            self.count("select count(*) from ledger_transaction").await,
            self.count("select count(*) from ledger_entry").await,
        )
    }

    pub fn entry(&self, txn: &str, account: &str, cents: i64) -> String {
        match self {
            Sql::Pg(_) => format!(
                "insert into ledger_entry (transaction_id, account, amount, created_at) values ('{txn}', '{account}', {}, now())",
                Decimal::new(cents, 2)
            ),
            Sql::Sqlite(_) => format!(
                "insert into ledger_entry (transaction_id, account, amount_cents, created_at) values ('{txn}', '{account}', {cents}, 0)"
            ),
        }
    }

    pub fn header(&self, txn: &str, lead_id: &str) -> String {
        let now = if matches!(self, Sql::Pg(_)) {
            "now()"
        } else {
            "0"
        };
        format!("insert into ledger_transaction (id, kind, lead_id, created_at) values ('{txn}', 'sale', '{lead_id}', {now})")
    }

    /// A balanced 10.00 sale transaction and its sale row.
    pub fn sale(&self, lead_id: &str, ping_id: &str, txn: &str) -> Vec<String> {
        let row = match self {
            Sql::Pg(_) => format!(
                "insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price, payout, transaction_id, created_at) \
                 values ('{lead_id}', '{ping_id}', 'alpha', 'acme', 'auto_insurance', 10.00, 8.00, '{txn}', now())"
            ),
            Sql::Sqlite(_) => format!(
                "insert into sale (lead_id, ping_id, buyer_id, seller_id, vertical, price_cents, payout_cents, transaction_id, created_at) \
                 values ('{lead_id}', '{ping_id}', 'alpha', 'acme', 'auto_insurance', 1000, 800, '{txn}', 0)"
            ),
        };
        vec![
            self.entry(txn, "buyer:alpha", -1000),
            self.entry(txn, "seller:acme", 800),
            self.entry(txn, EXCHANGE_REVENUE, 200),
            self.header(txn, lead_id),
            row,
        ]
    }

    /// The backend's own name for a column or a key.
    pub fn named<'a>(&self, pg: &'a str, sqlite: &'a str) -> &'a str {
        if matches!(self, Sql::Pg(_)) {
            pg
        } else {
            sqlite
        }
    }
}

#[track_caller]
pub fn assert_refused(result: Result<(), sqlx::Error>, because: &str) {
    let error = result.expect_err("the database should have refused this");
    let db = error
        .as_database_error()
        .unwrap_or_else(|| panic!("not a database error: {error}"));
    assert!(
        db.message().contains(because),
        "refused for another reason: {}",
        db.message()
    );
}

/// Refused by the unique key `key`, as the backend names it in its message.
#[track_caller]
pub fn assert_duplicate(result: Result<(), sqlx::Error>, key: &str) {
    let error = result.expect_err("the database should have refused a duplicate");
    let db = error
        .as_database_error()
        .unwrap_or_else(|| panic!("not a database error: {error}"));
    assert!(
        db.is_unique_violation() && db.message().contains(key),
        "refused for another reason: {}",
        db.message()
    );
}

pub fn t0() -> DateTime<Utc> {
    // Microseconds only: both backends keep exactly that.
    "2026-03-02T10:00:00.123456Z".parse().unwrap()
}

pub fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

pub fn bid(
    buyer_id: &str,
    outcome: &'static str,
    price: Option<&str>,
    rank: Option<i32>,
    bid_id: Option<&str>,
) -> BidRecord {
    BidRecord {
        buyer_id: buyer_id.into(),
        outcome,
        price: price.map(money),
        floor: money("5.00"),
        bid_id: bid_id.map(Into::into),
        reason: (outcome != "bid").then(|| outcome.to_string()),
        latency_ms: 40,
        rank,
    }
}

/// An offer at 14.99 from `alpha`, the bids listed out of rank order.
pub fn offer(ping_id: &str, at: DateTime<Utc>) -> NewPing {
    NewPing {
        id: ping_id.into(),
        seller_id: "acme".into(),
        vertical: "auto_insurance".into(),
        sub_id: Some("camp-7".into()),
        lead_json: r#"{"zip":"33101","state":"FL","age":34}"#.into(),
        status: PingStatus::Offer,
        price: Some(money("14.99")),
        payout: Some(money("11.99")),
        expires_at: Some(at + TimeDelta::seconds(120)),
        created_at: at,
        bids: vec![
            bid("beta", "bid", Some("12.50"), Some(2), Some("b-2")),
            bid("gamma", "timeout", None, None, None),
            bid("alpha", "bid", Some("14.99"), Some(1), Some("a-1")),
            bid("delta", "below_floor", Some("4.00"), None, None),
            bid("epsilon", "bid", Some("12.50"), Some(3), None),
        ],
    }
}

pub fn sale_of(ping_id: &str, lead_id: &str, price: &str, at: DateTime<Utc>) -> NewSale {
    let amounts = SaleAmounts::new(money(price), Decimal::new(80, 2));
    NewSale {
        lead_id: lead_id.into(),
        ping_id: ping_id.into(),
        buyer_id: "alpha".into(),
        seller_id: "acme".into(),
        vertical: "auto_insurance".into(),
        price: amounts.price,
        payout: amounts.payout,
        buyer_lead_id: Some("summit-77".into()),
        transaction: Transaction::sale(lead_id, "alpha", "acme", amounts, at),
        dedupe_keys: vec![format!("phone:{lead_id}"), format!("email:{lead_id}")],
        result_json: format!(r#"{{"status":"sold","lead_id":"{lead_id}"}}"#),
        cap_windows: vec![],
    }
}

pub fn attempt(outcome: &'static str, at: DateTime<Utc>) -> PostAttempt {
    PostAttempt {
        buyer_id: "alpha".into(),
        outcome,
        price: money("14.99"),
        reason: None,
        latency_ms: 80,
        at,
    }
}

/// Offers `ping_id` and sells it as `lead_id` for 14.99 at `at`: payout 11.99, margin 3.00.
pub async fn sell(store: &dyn Store, ping_id: &str, lead_id: &str, at: DateTime<Utc>) -> NewSale {
    store
        .insert_ping(&offer(ping_id, at))
        .await
        .expect("recording the ping");
    let sale = sale_of(ping_id, lead_id, "14.99", at);
    store
        .record_sale(&sale, &[attempt("accepted", at)])
        .await
        .expect("recording the sale");
    sale
}

pub async fn return_of(store: &dyn Store, lead_id: &str, at: DateTime<Utc>) -> NewReturn {
    let sale = store
        .get_sale(lead_id)
        .await
        .unwrap()
        .expect("the lead was sold");
    NewReturn {
        lead_id: lead_id.into(),
        buyer_id: sale.buyer_id,
        reason: "bad_phone".into(),
        transaction: Transaction::reversal(&sale.transaction_id, lead_id, &sale.entries, at),
    }
}

#[test]
fn the_test_database_name_replaces_the_servers() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://127.0.0.1", "t1"),
        "postgres://127.0.0.1/t1"
    );
    assert_eq!(
        with_database("postgres://u@h/test?sslmode=disable", "t1"),
        "postgres://u@h/t1?sslmode=disable"
    );
}
