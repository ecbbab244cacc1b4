//! The test's own database: a SQLite file, or (with `PINGPOST_TEST_DATABASE_URL`) a fresh
//! PostgreSQL database dropped when the test ends; and direct queries that look inside it.

use std::collections::HashMap;

use sqlx::{Connection, Executor, PgPool, Row, SqlitePool};

pub const URL_VAR: &str = "PINGPOST_TEST_DATABASE_URL";

pub enum TestDb {
    Sqlite(String),
    /// `owned`: this test made the database and drops it at the end.
    Pg {
        url: String,
        server: String,
        name: String,
        owned: bool,
    },
}

/// `server` with its database name replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server
        .split_once('?')
        .map_or((server, String::new()), |(b, q)| (b, format!("?{q}")));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = base[authority..]
        .find('/')
        .map_or(base, |slash| &base[..authority + slash]);
    format!("{base}/{name}{query}")
}

impl TestDb {
    pub async fn fresh(dir: &std::path::Path) -> TestDb {
        match std::env::var(URL_VAR) {
            Ok(server) => {
                let name = format!("pingpost_api_{:016x}", rand::random::<u64>());
                let mut admin = sqlx::PgConnection::connect(&server)
                    .await
                    .expect("the test PostgreSQL is reachable");
                admin
                    .execute(format!("create database {name}").as_str())
                    .await
                    .expect("creating a test database");
                TestDb::Pg {
                    url: with_database(&server, &name),
                    server,
                    name,
                    owned: true,
                }
            }
            Err(_) => TestDb::Sqlite(format!("sqlite://{}", dir.join("pingpost.db").display())),
        }
    }

    /// The same database for a second node, which leaves dropping it to the first.
    pub fn borrow(&self) -> TestDb {
        match self {
            TestDb::Sqlite(url) => TestDb::Sqlite(url.clone()),
            TestDb::Pg {
                url, server, name, ..
            } => TestDb::Pg {
                url: url.clone(),
                server: server.clone(),
                name: name.clone(),
                owned: false,
            },
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite(url) | TestDb::Pg { url, .. } => url,
        }
    }

    /// Rows of a query as text; each backend gets its own SQL.
    pub async fn rows(&self, sqlite: &str, pg: &str) -> Vec<Vec<String>> {
        fn text<R: Row>(row: &R) -> Vec<String>
        where
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            (0..row.len())
                .map(|i| {
                    row.try_get::<Option<String>, _>(i)
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                })
                .collect()
        }
        match self {
            TestDb::Sqlite(url) => {
                let pool = SqlitePool::connect(url).await.unwrap();
                let rows = sqlx::query(sqlite).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(text).collect()
            }
            TestDb::Pg { url, .. } => {
                let pool = PgPool::connect(url).await.unwrap();
                let rows = sqlx::query(pg).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(text).collect()
            }
        }
    }

    /// Every ledger entry as (transaction id, account, signed cents), in insertion order.
    pub async fn ledger_entries(&self) -> Vec<(String, String, i64)> {
        self.rows(
            "select transaction_id, account, cast(amount_cents as text) from ledger_entry order by id",
            "select transaction_id, account, ((amount * 100)::bigint)::text from ledger_entry order by id",
        )
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap()))
        .collect()
    }

    /// Each buyer's recorded bid outcome (for a database holding one ping).
    pub async fn bid_outcomes(&self) -> HashMap<String, String> {
        let sql = "select buyer_id, outcome from bid";
        self.rows(sql, sql)
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    }

    /// Every value of every table as text, to look for data that must not be there.
    pub async fn dump(&self) -> String {
        let tables = self
            .rows(
                "select name from sqlite_master where type = 'table'",
                "select table_name::text from information_schema.tables where table_schema = 'public'",
            )
            .await;
        let mut dump = String::new();
        for table in tables {
            let name = &table[0];
            let sqlite = format!("select * from \"{name}\"");
            let pg = format!("select t::text from \"{name}\" t");
            for row in self.rows(&sqlite, &pg).await {
                dump.push_str(&row.join("\n"));
                dump.push('\n');
            }
        }
        dump
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Pg {
            server,
            name,
            owned: true,
            ..
        } = self
        else {
            return;
        };
        let (server, name) = (server.clone(), name.clone());
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&server).await {
                    let _ = admin
                        .execute(format!("drop database if exists {name} with (force)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}
