//! The SQLite schema as the migrations leave it: what its checks cost and what they refuse.

use rusqlite::Connection;

use super::SqliteStore;
use crate::store::Store;

/// A statement of each shape the writer runs on the tables whose checks were IN lists.
const WRITES: [&str; 5] = [
    "insert into ping (id, seller_id, vertical, lead_json, status, created_at, post_state) values ('p1', 's', 'v', '{}', 'offer', 1, 'open')",
    "update ping set status = 'sold', post_state = 'done' where id = 'p1' and status = 'offer'",
    "insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p1', 'b', 'no_bid', 100, 20, 1)",
    "insert into post_attempt (ping_id, buyer_id, outcome, price_cents, latency_ms, created_at) values ('p1', 'b', 'accepted', 500, 20, 1)",
    "insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross_cents, payouts_cents, margin_cents, returns, returned_cents, returned_margin_cents) values ('buyer', 'b', 0, 1, 500, 400, 100, 0, 0, 0) on conflict (dimension, hour_start, group_key) do update set leads_sold = revenue_hourly.leads_sold + excluded.leads_sold",
];

fn opcodes(connection: &Connection, sql: &str) -> Vec<String> {
    let mut explain = connection.prepare(&format!("explain {sql}")).unwrap();
    let rows = explain
        .query_map([], |row| row.get::<_, String>(1))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

async fn migrated() -> (tempfile::TempDir, SqliteStore, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let connection = Connection::open(&path).unwrap();
    (dir, store, connection)
}

#[tokio::test]
async fn the_checks_build_no_temporary_table() {
    let (_dir, _store, connection) = migrated().await;
    for sql in WRITES {
        let ops = opcodes(&connection, sql);
        assert!(
            !ops.iter().any(|op| op == "OpenEphemeral"),
            "{sql} builds a temporary b-tree: {ops:?}"
        );
    }
}

#[tokio::test]
async fn the_checks_still_refuse_what_they_refused() {
    let (_dir, _store, connection) = migrated().await;
    for sql in WRITES {
        connection.execute(sql, []).unwrap();
    }
    let refused = [
        "insert into ping (id, seller_id, vertical, lead_json, status, created_at) values ('p2', 's', 'v', '{}', 'bogus', 1)",
        "insert into ping (id, seller_id, vertical, lead_json, status, created_at, post_state) values ('p3', 's', 'v', '{}', 'offer', 1, 'bogus')",
        "update ping set status = 'expired' where id = 'p1'",
        "insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p1', 'c', 'maybe', 100, 20, 1)",
        "insert into post_attempt (ping_id, buyer_id, outcome, price_cents, latency_ms, created_at) values ('p1', 'b', 'lost', 500, 20, 1)",
        "insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross_cents, payouts_cents, margin_cents, returns, returned_cents, returned_margin_cents) values ('region', 'b', 0, 1, 500, 400, 100, 0, 0, 0)",
    ];
    for sql in refused {
        let error = connection.execute(sql, []).unwrap_err().to_string();
        assert!(error.contains("CHECK constraint failed"), "{sql}: {error}");
    }
    // Every value the old checks allowed is still allowed.
    for status in ["offer", "no_bid", "sold", "unsold"] {
        connection
            .execute(
                "insert into ping (id, seller_id, vertical, lead_json, status, created_at) values (?1, 's', 'v', '{}', ?1, 1)",
                [status],
            )
            .unwrap();
    }
    for outcome in ["bid", "timeout", "error", "below_floor"] {
        connection
            .execute(
                "insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p1', ?1, ?1, 100, 20, 1)",
                [outcome],
            )
            .unwrap();
    }
}

#[tokio::test]
async fn a_database_with_rows_takes_the_new_checks_whole() {
    // A database as the migrations before this change left it, with rows in every table
    // whose definition the migration edits.
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before");
    std::fs::create_dir(&before).unwrap();
    for name in [
        "0001_init.sql",
        "0002_reports.sql",
        "0004_log_indexes_by_time.sql",
    ] {
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        std::fs::copy(from.join(name), before.join(name)).unwrap();
    }
    let path = dir.path().join("old.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&store.reader)
        .await
        .unwrap();
    let connection = Connection::open(&path).unwrap();
    assert!(opcodes(&connection, WRITES[2])
        .iter()
        .any(|op| op == "OpenEphemeral"));
    for sql in WRITES {
        connection.execute(sql, []).unwrap();
    }
    drop(connection);

    store.migrate().await.unwrap();

    let connection = Connection::open(&path).unwrap();
    let check: String = connection
        .query_row("pragma integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let rows: i64 = connection
        .query_row(
            "select (select count(*) from ping) + (select count(*) from bid) + (select count(*) from post_attempt) + (select count(*) from revenue_hourly)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(rows, 4);
    assert!(!opcodes(&connection, WRITES[2])
        .iter()
        .any(|op| op == "OpenEphemeral"));
    // The store's own connections read the edited definitions too.
    let error = sqlx::query("insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p1', 'z', 'maybe', 100, 20, 1)")
        .execute(&store.reader)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("CHECK constraint failed"), "{error}");
}
