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

/// A database in `old.db` of the returned directory as the migrations numbered below
/// `version` left it, and the store on it.
async fn migrated_before(version: i64) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before");
    std::fs::create_dir(&before).unwrap();
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&from).unwrap() {
        let name = entry.unwrap().file_name();
        let number: i64 = name.to_str().unwrap()[..4].parse().unwrap();
        if number < version {
            std::fs::copy(from.join(&name), before.join(&name)).unwrap();
        }
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
    (dir, store)
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
    let (dir, store) = migrated_before(5).await;
    let path = dir.path().join("old.db");
    let connection = Connection::open(&path).unwrap();
    assert!(opcodes(&connection, WRITES[2])
        .iter()
        .any(|op| op == "OpenEphemeral"));
    for sql in WRITES {
        connection.execute(sql, []).unwrap();
    }
    drop(connection);

    let connection = migrate_and_check(&store, &path).await;
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

/// Runs the store's migrations on the database at `path`, checks the file's integrity and
/// opens it again.
async fn migrate_and_check(store: &SqliteStore, path: &std::path::Path) -> Connection {
    store.migrate().await.unwrap();
    let connection = Connection::open(path).unwrap();
    let check: String = connection
        .query_row("pragma integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    connection
}

/// The b-trees a statement writes: SQLite opens each with `OpenWrite`.
fn btrees_written(connection: &Connection, sql: &str) -> usize {
    opcodes(connection, sql)
        .iter()
        .filter(|op| *op == "OpenWrite")
        .count()
}

#[tokio::test]
async fn a_bid_row_is_written_to_one_btree() {
    let (dir, store) = migrated_before(6).await;
    let connection = Connection::open(dir.path().join("old.db")).unwrap();
    // The table, its key's index and the time index.
    assert_eq!(btrees_written(&connection, WRITES[2]), 3);
    drop(connection);
    store.migrate().await.unwrap();
    let connection = Connection::open(dir.path().join("old.db")).unwrap();
    assert_eq!(btrees_written(&connection, WRITES[2]), 1);
}

#[tokio::test]
async fn the_bid_log_moves_whole_and_keeps_its_rules() {
    let (dir, store) = migrated_before(6).await;
    let path = dir.path().join("old.db");
    let connection = Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "insert into ping (id, seller_id, vertical, lead_json, status, created_at, post_state) values ('p1', 's', 'v', '{}', 'offer', 7, 'open'), ('p2', 's', 'v', '{}', 'no_bid', 9, 'done');
             insert into bid (ping_id, buyer_id, outcome, price_cents, floor_cents, bid_id, reason, latency_ms, rank, created_at) values
                 ('p1', 'b2', 'bid', 1250, 100, 'x-1', null, 21, 1, 7),
                 ('p1', 'b1', 'below_floor', 90, 100, null, 'below floor', 20, null, 7),
                 ('p1', 'b3', 'timeout', null, 100, null, 'deadline', 1000, null, 7),
                 ('p2', 'b1', 'no_bid', null, 300, null, null, 19, null, 9);",
        )
        .unwrap();
    let all = |connection: &Connection| -> Vec<String> {
        let mut select = connection
            .prepare("select ping_id, buyer_id, outcome, price_cents, floor_cents, bid_id, reason, latency_ms, rank, created_at from bid order by ping_id, buyer_id")
            .unwrap();
        let rows = select
            .query_map([], |row| {
                Ok((0..10)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let rows = all(&connection);
    assert_eq!(rows.len(), 4);
    drop(connection);

    let connection = migrate_and_check(&store, &path).await;
    assert_eq!(all(&connection), rows);
    connection
        .pragma_update(None, "foreign_keys", "on")
        .unwrap();
    let refused = [
        ("insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p1', 'b2', 'no_bid', 100, 20, 7)", "UNIQUE constraint failed"),
        ("insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p9', 'b1', 'no_bid', 100, 20, 7)", "FOREIGN KEY constraint failed"),
        ("insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p1', 'b9', 'maybe', 100, 20, 7)", "CHECK constraint failed"),
        ("insert into bid (ping_id, buyer_id, outcome, floor_cents, latency_ms, created_at) values ('p1', 'b9', 'bid', 100, null, 7)", "NOT NULL constraint failed"),
    ];
    for (sql, expected) in refused {
        let error = connection.execute(sql, []).unwrap_err().to_string();
        assert!(error.contains(expected), "{sql}: {error}");
    }
    // The auction statistics find a time range's bids through their pings.
    let micros = |us: i64| chrono::DateTime::from_timestamp_micros(us).unwrap();
    let cells = super::reports::auction_counts(
        &store.reader,
        crate::store::AuctionDimension::Buyer,
        micros(7),
        micros(9),
    )
    .await
    .unwrap();
    let mut counted: Vec<_> = cells
        .iter()
        .map(|c| {
            (
                c.group.as_str(),
                c.bid_requests,
                c.bids,
                c.bid_cents,
                c.wins,
            )
        })
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        [
            ("b1", 1, 1, 90, 0),
            ("b2", 1, 1, 1250, 1),
            ("b3", 1, 0, 0, 0)
        ]
    );
}
