//! What each database refuses by itself, to a client that goes around the store: the books
//! cannot be unbalanced, rewritten or deleted, and a lead cannot be sold twice.

use crate::fixtures::*;

on_both_backends!(
    the_database_refuses_an_unbalanced_ledger_transaction,
    the_database_refuses_to_update_the_books,
    the_database_refuses_to_delete_from_the_books,
    the_database_refuses_a_second_sale_of_a_ping_or_a_lead,
);

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
    let empty = [sql.header("txn_2", "lead_1")];
    assert_refused(sql.all_or_nothing(&empty).await, "does not balance");
    assert_eq!(
        sql.count("select count(*) from ledger_entry").await,
        0,
        "nothing of these is kept"
    );
    assert_eq!(
        sql.count("select count(*) from ledger_transaction").await,
        0
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
    let amount = sql.named("amount", "amount_cents");
    let price = sql.named("price", "price_cents");

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
    assert_duplicate(
        sql.all_or_nothing(&same_ping).await,
        sql.named("sale_ping_id_key", "sale.ping_id"),
    );
    let same_lead = sql.sale("lead_1", "ping_2", "txn_3");
    assert_duplicate(
        sql.all_or_nothing(&same_lead).await,
        sql.named("sale_pkey", "sale.lead_id"),
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
