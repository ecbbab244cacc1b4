//! The PostgreSQL store through the `Store` trait, and what each database refuses by itself.
//!
//! Every scenario runs on both backends, so the PostgreSQL store is held to the SQLite one's
//! behaviour and both schemas prove their own guarantees against direct SQL. The PostgreSQL
//! side needs `PINGPOST_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`):
//! each test creates its own database there and drops it afterwards. Without it those tests
//! say they were skipped and pass; the SQLite side always runs, on a temporary file.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::FutureExt;
use pingpost::domain::Money;
use pingpost::ledger::{Entry, SaleAmounts, Transaction, TransactionKind, EXCHANGE_REVENUE};
use pingpost::store::{
    BidRecord, Claim, DynStore, NewPing, NewReturn, NewSale, PgStore, PingStatus, PostAttempt,
    Store, StoreError,
};
use rust_decimal::Decimal;
use sqlx::{Connection, Executor, PgConnection, PgPool, SqlitePool};

const URL_VAR: &str = "PINGPOST_TEST_DATABASE_URL";

// ---------------------------------------------------------------------------------------
// Fixtures: a fresh database of either kind, with a store on it and a direct SQL client.

/// A client of the same database that goes around the store, as an operator's psql would.
enum Sql {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

struct Books {
    store: DynStore,
    sql: Sql,
    url: String,
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
async fn with_fresh_pg<F, Fut>(test: &str, body: F)
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
    let store = PgStore::connect(&url, 4, Duration::from_secs(10))
        .await
        .expect("building the pool");
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

    let books = Books {
        store: std::sync::Arc::new(store),
        sql: Sql::Pg(sql.clone()),
        url,
        _dir: None,
    };
    let outcome = AssertUnwindSafe(body(books)).catch_unwind().await;
    sql.close().await;
    admin
        .execute(format!("drop database {name} with (force)").as_str())
        .await
        .expect("dropping the test database");
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure);
    }
}

async fn fresh_sqlite() -> Books {
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
    async fn all_or_nothing(&self, statements: &[String]) -> Result<(), sqlx::Error> {
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

    async fn count(&self, sql: &str) -> i64 {
        match self {
            Sql::Pg(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Sql::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("counting")
    }

    fn entry(&self, txn: &str, account: &str, cents: i64) -> String {
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

    fn header(&self, txn: &str, lead_id: &str) -> String {
        let now = if matches!(self, Sql::Pg(_)) {
            "now()"
        } else {
            "0"
        };
        format!("insert into ledger_transaction (id, kind, lead_id, created_at) values ('{txn}', 'sale', '{lead_id}', {now})")
    }

    /// A balanced 10.00 sale transaction and its sale row.
    fn sale(&self, lead_id: &str, ping_id: &str, txn: &str) -> Vec<String> {
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

    /// The name under which each backend reports a broken unique key.
    fn unique_key(&self, pg_constraint: &'static str, sqlite_column: &'static str) -> &'static str {
        if matches!(self, Sql::Pg(_)) {
            pg_constraint
        } else {
            sqlite_column
        }
    }
}

#[track_caller]
fn assert_refused(result: Result<impl std::fmt::Debug, sqlx::Error>, because: &str) {
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

fn t0() -> DateTime<Utc> {
    // Microseconds only: both backends keep exactly that.
    "2026-03-02T10:00:00.123456Z".parse().unwrap()
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn bid(
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
fn offer(ping_id: &str, at: DateTime<Utc>) -> NewPing {
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

fn sale_of(ping_id: &str, lead_id: &str, price: &str, at: DateTime<Utc>) -> NewSale {
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
    }
}

fn attempt(outcome: &'static str, at: DateTime<Utc>) -> PostAttempt {
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
async fn sell(store: &dyn Store, ping_id: &str, lead_id: &str, at: DateTime<Utc>) -> NewSale {
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

async fn return_of(store: &dyn Store, lead_id: &str, at: DateTime<Utc>) -> NewReturn {
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

// ---------------------------------------------------------------------------------------
// Scenarios, each run on both backends.

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::with_fresh_pg(stringify!($scenario), |books| async move { super::$scenario(books).await }).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(super::fresh_sqlite().await).await
                }
            )*
        }
    };
}

on_both_backends!(
    a_ping_round_trips_and_its_bids_come_best_first,
    a_claim_is_exclusive_until_its_lease_ends_and_done_after_the_sale,
    a_sale_keeps_its_exact_ledger_entries_and_happens_once,
    a_lead_is_returned_at_most_once,
    account_entries_are_the_range_oldest_first,
    dedupe_hit_finds_only_this_buyers_recent_keys,
    the_server_secret_is_made_once_and_kept,
    the_database_refuses_an_unbalanced_ledger_transaction,
    the_database_refuses_to_update_the_books,
    the_database_refuses_to_delete_from_the_books,
    the_database_refuses_a_second_sale_of_a_ping_or_a_lead,
);

async fn a_ping_round_trips_and_its_bids_come_best_first(books: Books) {
    let store = &*books.store;
    let ping = offer("ping_1", t0());
    store.insert_ping(&ping).await.unwrap();

    let row = store
        .get_ping("ping_1")
        .await
        .unwrap()
        .expect("the ping is stored");
    assert_eq!(
        (
            row.id.as_str(),
            row.seller_id.as_str(),
            row.vertical.as_str()
        ),
        ("ping_1", "acme", "auto_insurance")
    );
    assert_eq!(
        row.lead_json, ping.lead_json,
        "the lead text comes back as it was given"
    );
    assert_eq!(row.status, PingStatus::Offer);
    assert_eq!(row.payout, Some(money("11.99")));
    assert_eq!(row.expires_at, ping.expires_at);
    assert_eq!(row.lead_id, None);

    let ranked: Vec<_> = store
        .ranked_bids("ping_1")
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.buyer_id, b.price.to_wire(), b.bid_id))
        .collect();
    assert_eq!(
        ranked,
        vec![
            (
                "alpha".to_string(),
                "14.99".to_string(),
                Some("a-1".to_string())
            ),
            (
                "beta".to_string(),
                "12.50".to_string(),
                Some("b-2".to_string())
            ),
            ("epsilon".to_string(), "12.50".to_string(), None),
        ]
    );
    assert!(store.get_ping("ping_unknown").await.unwrap().is_none());
    assert!(
        matches!(store.insert_ping(&ping).await, Err(StoreError::Conflict(_))),
        "a ping id is used once"
    );
}

async fn a_claim_is_exclusive_until_its_lease_ends_and_done_after_the_sale(books: Books) {
    let store = &*books.store;
    let now = t0();
    let lease = TimeDelta::seconds(30);
    store.insert_ping(&offer("ping_1", now)).await.unwrap();

    assert_eq!(
        store
            .claim_post("ping_1", "h1", now, now + lease)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let later = now + TimeDelta::seconds(1);
    assert_eq!(
        store
            .claim_post("ping_1", "h2", later, later + lease)
            .await
            .unwrap(),
        Claim::Busy {
            body_hash: "h1".into()
        }
    );

    // A claim whose lease has run out is void: its holder died.
    let after_lease = now + lease + TimeDelta::microseconds(1);
    assert_eq!(
        store
            .claim_post("ping_1", "h3", after_lease, after_lease + lease)
            .await
            .unwrap(),
        Claim::Claimed
    );
    store.release_claim("ping_1").await.unwrap();
    assert_eq!(
        store
            .claim_post("ping_1", "h4", after_lease, after_lease + lease)
            .await
            .unwrap(),
        Claim::Claimed
    );

    let sale = sale_of("ping_1", "lead_1", "14.99", after_lease);
    store
        .record_sale(
            &sale,
            &[
                attempt("rejected", after_lease),
                attempt("accepted", after_lease),
            ],
        )
        .await
        .unwrap();
    let much_later = now + TimeDelta::days(1);
    assert_eq!(
        store
            .claim_post("ping_1", "h5", much_later, much_later + lease)
            .await
            .unwrap(),
        Claim::Done {
            body_hash: "h4".into(),
            result_json: sale.result_json.clone()
        }
    );
    let row = store.get_ping("ping_1").await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.lead_id.as_deref()),
        (PingStatus::Sold, Some("lead_1"))
    );
}

async fn a_sale_keeps_its_exact_ledger_entries_and_happens_once(books: Books) {
    let store = &*books.store;
    let sale = sell(store, "ping_1", "lead_1", t0()).await;

    let row = store
        .get_sale("lead_1")
        .await
        .unwrap()
        .expect("the sale is stored");
    assert_eq!(
        (row.buyer_id.as_str(), row.seller_id.as_str(), row.price),
        ("alpha", "acme", money("14.99"))
    );
    assert_eq!(row.transaction_id, sale.transaction.id);
    assert_eq!(row.created_at, t0());
    assert_eq!(
        row.entries,
        vec![
            Entry {
                account: "buyer:alpha".into(),
                amount_cents: -1499
            },
            Entry {
                account: "seller:acme".into(),
                amount_cents: 1199
            },
            Entry {
                account: EXCHANGE_REVENUE.into(),
                amount_cents: 300
            },
        ]
    );
    assert!(store.get_sale("lead_unknown").await.unwrap().is_none());

    // The largest amount the exchange handles survives the trip to the cent.
    store.insert_ping(&offer("ping_big", t0())).await.unwrap();
    let big = sale_of("ping_big", "lead_big", "9999999999.99", t0());
    store.record_sale(&big, &[]).await.unwrap();
    let stored = store.get_sale("lead_big").await.unwrap().unwrap();
    assert_eq!(stored.price, money("9999999999.99"));
    assert_eq!(stored.entries, big.transaction.entries);

    let again = sale_of("ping_1", "lead_2", "14.99", t0());
    assert!(
        matches!(
            store.record_sale(&again, &[]).await,
            Err(StoreError::Conflict(_))
        ),
        "a ping sells once"
    );
    assert!(
        store.get_sale("lead_2").await.unwrap().is_none(),
        "nothing of the refused sale is kept"
    );
    let transactions = books
        .sql
        .count(&format!(
            "select count(*) from ledger_transaction where id = '{}'",
            again.transaction.id
        ))
        .await;
    assert_eq!(transactions, 0);
}

async fn a_lead_is_returned_at_most_once(books: Books) {
    let store = &*books.store;
    sell(store, "ping_1", "lead_1", t0()).await;
    let at = t0() + TimeDelta::hours(2);

    store
        .record_return(&return_of(store, "lead_1", at).await)
        .await
        .expect("the first return");
    let second = return_of(store, "lead_1", at).await;
    assert!(
        matches!(
            store.record_return(&second).await,
            Err(StoreError::Conflict(_))
        ),
        "a second return is a conflict"
    );

    let kept = books
        .sql
        .count(&format!(
            "select count(*) from ledger_transaction where id = '{}'",
            second.transaction.id
        ))
        .await;
    assert_eq!(kept, 0, "the second reversal is not written");
    let entries = store
        .account_entries("buyer:alpha", t0(), t0() + TimeDelta::days(1))
        .await
        .unwrap();
    let amounts: Vec<i64> = entries.iter().map(|e| e.amount_cents).collect();
    assert_eq!(amounts, vec![-1499, 1499], "one sale, one refund");
}

async fn account_entries_are_the_range_oldest_first(books: Books) {
    let store = &*books.store;
    let sale = sell(store, "ping_1", "lead_1", t0()).await;
    sell(store, "ping_2", "lead_2", t0() + TimeDelta::hours(1)).await;
    let returned_at = t0() + TimeDelta::days(1);
    let ret = return_of(store, "lead_1", returned_at).await;
    store.record_return(&ret).await.unwrap();

    let seller = "seller:acme";
    let both_sales = store
        .account_entries(seller, t0(), returned_at)
        .await
        .unwrap();
    let seen: Vec<_> = both_sales
        .iter()
        .map(|e| (e.lead_id.as_str(), e.kind, e.amount_cents))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("lead_1", TransactionKind::Sale, 1199),
            ("lead_2", TransactionKind::Sale, 1199)
        ],
        "`to` is exclusive"
    );
    assert_eq!(both_sales[0].transaction_id, sale.transaction.id);
    assert_eq!(both_sales[0].time, t0());
    assert_eq!(both_sales[0].account, seller);

    let all = store
        .account_entries(seller, t0(), returned_at + TimeDelta::microseconds(1))
        .await
        .unwrap();
    let last = all.last().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        (last.kind, last.amount_cents, last.time),
        (TransactionKind::Return, -1199, returned_at)
    );
    assert_eq!(last.transaction_id, ret.transaction.id);

    let after_first = store
        .account_entries(seller, t0() + TimeDelta::microseconds(1), returned_at)
        .await
        .unwrap();
    assert_eq!(
        after_first
            .iter()
            .map(|e| e.lead_id.as_str())
            .collect::<Vec<_>>(),
        vec!["lead_2"],
        "`from` is inclusive, to the microsecond"
    );
    let revenue = store
        .account_entries(
            EXCHANGE_REVENUE,
            t0(),
            returned_at + TimeDelta::microseconds(1),
        )
        .await
        .unwrap();
    assert_eq!(
        revenue.iter().map(|e| e.amount_cents).collect::<Vec<_>>(),
        vec![300, 300, -300]
    );
    assert!(store
        .account_entries("buyer:nobody", t0(), returned_at)
        .await
        .unwrap()
        .is_empty());
}

async fn dedupe_hit_finds_only_this_buyers_recent_keys(books: Books) {
    let store = &*books.store;
    sell(store, "ping_1", "lead_1", t0()).await;
    let month_ago = t0() - TimeDelta::days(30);
    let keys = |names: &[&str]| names.iter().map(|k| k.to_string()).collect::<Vec<_>>();

    assert!(
        store
            .dedupe_hit("alpha", &keys(&["email:lead_1"]), t0())
            .await
            .unwrap(),
        "`since` is inclusive"
    );
    assert!(store
        .dedupe_hit("alpha", &keys(&["phone:other", "phone:lead_1"]), month_ago)
        .await
        .unwrap());
    assert!(
        !store
            .dedupe_hit(
                "alpha",
                &keys(&["phone:lead_1"]),
                t0() + TimeDelta::microseconds(1)
            )
            .await
            .unwrap(),
        "too old"
    );
    assert!(
        !store
            .dedupe_hit("beta", &keys(&["phone:lead_1"]), month_ago)
            .await
            .unwrap(),
        "another buyer's key"
    );
    assert!(!store
        .dedupe_hit("alpha", &keys(&["phone:other"]), month_ago)
        .await
        .unwrap());
    assert!(!store.dedupe_hit("alpha", &[], month_ago).await.unwrap());
}

async fn the_server_secret_is_made_once_and_kept(books: Books) {
    let first = books.store.server_secret().await.unwrap();
    assert_eq!(first.len(), 32);
    assert_eq!(books.store.server_secret().await.unwrap(), first);
    let reopened = pingpost::store::connect(&books.url)
        .await
        .expect("opening the same database again");
    assert_eq!(
        reopened.server_secret().await.unwrap(),
        first,
        "a restart keeps the secret"
    );
}

async fn the_database_refuses_an_unbalanced_ledger_transaction(books: Books) {
    let sql = &books.sql;
    let unbalanced = [
        sql.entry("txn_u", "buyer:alpha", -1000),
        sql.entry("txn_u", "seller:acme", 999),
        sql.header("txn_u", "lead_1"),
    ];
    assert_refused(sql.all_or_nothing(&unbalanced).await, "does not balance");
    let lonely = [
        sql.entry("txn_1", "buyer:alpha", 0),
        sql.header("txn_1", "lead_1"),
    ];
    assert_refused(sql.all_or_nothing(&lonely).await, "does not balance");
    assert_eq!(
        sql.count("select count(*) from ledger_entry").await,
        0,
        "nothing of either is kept"
    );

    // The same statements, balanced, commit: the refusals above are about the balance.
    let balanced = [
        sql.entry("txn_b", "buyer:alpha", -1000),
        sql.entry("txn_b", "seller:acme", 1000),
        sql.header("txn_b", "lead_1"),
    ];
    sql.all_or_nothing(&balanced)
        .await
        .expect("a balanced transaction commits");
    assert_eq!(
        sql.count("select count(*) from ledger_entry where transaction_id = 'txn_b'")
            .await,
        2
    );

    // Nor can a committed transaction be added to, even with entries that balance each other.
    let appended = [
        sql.entry("txn_b", "buyer:alpha", -500),
        sql.entry("txn_b", "seller:acme", 500),
    ];
    assert_refused(sql.all_or_nothing(&appended).await, "is sealed");
    assert_eq!(
        sql.count("select count(*) from ledger_entry where transaction_id = 'txn_b'")
            .await,
        2
    );
}

async fn the_database_refuses_to_update_the_books(books: Books) {
    let (store, sql) = (&*books.store, &books.sql);
    let sale = sell(store, "ping_1", "lead_1", t0()).await;
    let txn = &sale.transaction.id;
    let amount = if matches!(sql, Sql::Pg(_)) {
        "amount"
    } else {
        "amount_cents"
    };
    let price = if matches!(sql, Sql::Pg(_)) {
        "price"
    } else {
        "price_cents"
    };

    for update in [
        format!("update ledger_entry set {amount} = {amount} + 1 where transaction_id = '{txn}' and account = 'exchange:revenue'"),
        format!("update ledger_entry set account = 'seller:other' where transaction_id = '{txn}'"),
        format!("update ledger_transaction set lead_id = 'lead_2' where id = '{txn}'"),
        format!("update sale set {price} = 0 where lead_id = 'lead_1'"),
    ] {
        assert_refused(sql.all_or_nothing(&[update]).await, "append-only");
    }
    let row = store.get_sale("lead_1").await.unwrap().unwrap();
    assert_eq!(
        row.entries, sale.transaction.entries,
        "the entries are as written"
    );
    assert_eq!(row.price, sale.price);
}

async fn the_database_refuses_to_delete_from_the_books(books: Books) {
    let (store, sql) = (&*books.store, &books.sql);
    let sale = sell(store, "ping_1", "lead_1", t0()).await;
    let txn = &sale.transaction.id;

    for delete in [
        format!("delete from ledger_entry where transaction_id = '{txn}' and account = 'exchange:revenue'"),
        "delete from ledger_entry".to_string(),
        format!("delete from ledger_transaction where id = '{txn}'"),
        "delete from sale where lead_id = 'lead_1'".to_string(),
    ] {
        assert_refused(sql.all_or_nothing(&[delete]).await, "append-only");
    }
    assert_eq!(
        store.get_sale("lead_1").await.unwrap().unwrap().entries,
        sale.transaction.entries
    );
    assert_eq!(
        sql.count("select count(*) from ledger_transaction").await,
        1
    );
}

async fn the_database_refuses_a_second_sale_of_a_ping_or_a_lead(books: Books) {
    let (store, sql) = (&*books.store, &books.sql);
    sell(store, "ping_1", "lead_1", t0()).await;
    store.insert_ping(&offer("ping_2", t0())).await.unwrap();
    store.insert_ping(&offer("ping_3", t0())).await.unwrap();

    let same_ping = sql.sale("lead_2", "ping_1", "txn_2");
    let error = sql
        .all_or_nothing(&same_ping)
        .await
        .expect_err("a second sale of ping_1");
    assert!(
        error
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{error}"
    );
    assert_refused(
        Err::<(), _>(error),
        sql.unique_key("sale_ping_id_key", "sale.ping_id"),
    );

    let same_lead = sql.sale("lead_1", "ping_2", "txn_3");
    let error = sql
        .all_or_nothing(&same_lead)
        .await
        .expect_err("a second sale of lead_1");
    assert!(
        error
            .as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{error}"
    );
    assert_refused(
        Err::<(), _>(error),
        sql.unique_key("sale_pkey", "sale.lead_id"),
    );

    // The same statements for a ping and a lead not sold yet commit.
    sql.all_or_nothing(&sql.sale("lead_3", "ping_3", "txn_4"))
        .await
        .expect("a first sale of ping_3");
    assert_eq!(sql.count("select count(*) from sale").await, 2);
    assert_eq!(
        sql.count("select count(*) from ledger_transaction").await,
        2,
        "the refused sales left no transaction"
    );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL only.

#[tokio::test]
async fn postgres_refuses_to_truncate_the_books() {
    with_fresh_pg(
        "postgres_refuses_to_truncate_the_books",
        |books| async move {
            sell(&*books.store, "ping_1", "lead_1", t0()).await;
            for table in ["ledger_entry", "ledger_transaction", "sale", "lead_return"] {
                assert_refused(
                    books
                        .sql
                        .all_or_nothing(&[format!("truncate {table} cascade")])
                        .await,
                    "append-only",
                );
            }
            assert_eq!(
                books.sql.count("select count(*) from ledger_entry").await,
                3
            );
            assert_eq!(books.sql.count("select count(*) from sale").await, 1);
        },
    )
    .await
}

#[tokio::test]
async fn postgres_keeps_money_as_exact_decimals() {
    with_fresh_pg("postgres_keeps_money_as_exact_decimals", |books| async move {
        sell(&*books.store, "ping_1", "lead_1", t0()).await;
        let Sql::Pg(pool) = &books.sql else { unreachable!() };
        let amounts: Vec<String> = sqlx::query_scalar("select amount::text from ledger_entry order by id").fetch_all(pool).await.unwrap();
        assert_eq!(amounts, ["-14.99", "11.99", "3.00"]);
        let types: Vec<String> = sqlx::query_scalar(
            "select distinct data_type from information_schema.columns \
             where table_schema = 'public' and column_name in ('price', 'payout', 'floor', 'amount')",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(types, ["numeric"]);
    })
    .await
}

#[tokio::test]
async fn postgres_store_starts_without_the_server_and_reports_it_unavailable() {
    // A port that was free a moment ago: nothing listens there, so connecting is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/pingpost");
    let store = PgStore::connect(&url, 2, Duration::from_millis(300))
        .await
        .expect("starting needs no server");

    assert!(matches!(
        store.check().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.get_ping("ping_1").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.migrate().await,
        Err(StoreError::Unavailable(_))
    ));

    assert!(
        pingpost::store::connect(&url).await.is_ok(),
        "connect() knows postgres://"
    );
    assert!(
        pingpost::store::connect(&url.replacen("postgres", "postgresql", 1))
            .await
            .is_ok()
    );
    assert!(pingpost::store::connect("mysql://127.0.0.1/pingpost")
        .await
        .is_err());
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
