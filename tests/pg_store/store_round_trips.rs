//! The `Store` trait's behaviour, the same on both backends.

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;
use pingpost::ledger::{Entry, TransactionKind, EXCHANGE_REVENUE};
use pingpost::store::{
    Claim, PingStatus, RevenueDimension, RevenueQuery, RevenueSource, RevenueSums, Store,
    StoreError,
};

use crate::fixtures::*;

on_both_backends!(
    a_ping_round_trips_and_its_bids_come_best_first,
    a_claim_is_exclusive_until_its_lease_ends_and_done_after_the_sale,
    a_sale_keeps_its_exact_ledger_entries_and_happens_once,
    a_lead_is_returned_at_most_once,
    account_entries_are_the_range_oldest_first,
    an_unsold_ping_keeps_its_result_and_cannot_be_sold,
    dedupe_hit_finds_only_this_buyers_recent_keys,
    the_server_secret_is_made_once_and_kept,
    concurrent_posts_claim_once_and_sell_once,
    concurrent_sales_keep_the_rollup_exact_through_compaction,
    the_ping_writer_commits_each_ping_and_isolates_a_bad_one,
    writes_at_once_fail_alone_and_leave_nothing_half_written,
    a_batch_of_pings_is_written_whole_or_not_at_all_whatever_its_size,
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

    // A post reads the ping and its valid bids, best first, in one query.
    let (offered, bids) = store.get_offer("ping_1").await.unwrap().expect("the offer");
    assert_eq!(format!("{offered:?}"), format!("{row:?}"));
    let ranked: Vec<_> = bids
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

    let mut no_bid = offer("ping_2", t0());
    no_bid.status = PingStatus::NoBid;
    no_bid.bids.retain(|b| b.rank.is_none());
    let mut unranked = offer("ping_3", t0());
    unranked.bids.clear();
    // Several pings in one transaction, as the group commit writes them.
    store.insert_pings(&[no_bid, unranked]).await.unwrap();
    let (row_2, bids_2) = store.get_offer("ping_2").await.unwrap().expect("ping_2");
    assert_eq!((row_2.status, bids_2.len()), (PingStatus::NoBid, 0));
    let (row_3, bids_3) = store.get_offer("ping_3").await.unwrap().expect("ping_3");
    assert_eq!((row_3.id.as_str(), bids_3.len()), ("ping_3", 0));
    assert!(store.get_offer("ping_unknown").await.unwrap().is_none());
    // A batch with one bad ping is refused whole.
    let fresh = offer("ping_4", t0());
    assert!(store
        .insert_pings(&[fresh, offer("ping_1", t0())])
        .await
        .is_err());
    assert!(store.get_ping("ping_4").await.unwrap().is_none());
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

async fn an_unsold_ping_keeps_its_result_and_cannot_be_sold(books: Books) {
    let store = &*books.store;
    let now = t0();
    let lease_until = now + TimeDelta::seconds(30);
    store.insert_ping(&offer("ping_1", now)).await.unwrap();
    assert_eq!(
        store
            .claim_post("ping_1", "h1", now, lease_until)
            .await
            .unwrap(),
        Claim::Claimed
    );

    let result = r#"{"status":"unsold","reason":"all_buyers_rejected"}"#;
    store
        .record_unsold(
            "ping_1",
            result,
            &[attempt("rejected", now), attempt("timeout", now)],
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_ping("ping_1").await.unwrap().unwrap().status,
        PingStatus::Unsold
    );
    let later = now + TimeDelta::days(1);
    assert_eq!(
        store
            .claim_post("ping_1", "h2", later, later + TimeDelta::seconds(30))
            .await
            .unwrap(),
        Claim::Done {
            body_hash: "h1".into(),
            result_json: result.into()
        }
    );
    assert_eq!(
        books
            .sql
            .count("select count(*) from post_attempt where ping_id = 'ping_1'")
            .await,
        2
    );

    let late = sale_of("ping_1", "lead_1", "14.99", later);
    assert!(
        matches!(
            store.record_sale(&late, &[]).await,
            Err(StoreError::Conflict(_))
        ),
        "the ping is closed"
    );
    assert!(store.get_sale("lead_1").await.unwrap().is_none());
    assert_eq!(
        books.sql.count("select count(*) from ledger_entry").await,
        0,
        "no money moved"
    );
    assert_eq!(
        store.get_ping("ping_1").await.unwrap().unwrap().status,
        PingStatus::Unsold
    );
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

async fn concurrent_posts_claim_once_and_sell_once(books: Books) {
    let store = &*books.store;
    let now = t0();
    store.insert_ping(&offer("ping_1", now)).await.unwrap();

    let hashes: Vec<String> = (0..8).map(|i| format!("h{i}")).collect();
    let claims = join_all(
        hashes
            .iter()
            .map(|h| store.claim_post("ping_1", h, now, now + TimeDelta::seconds(30))),
    )
    .await;
    let claimed = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Claimed)))
        .count();
    let busy = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Busy { .. })))
        .count();
    assert_eq!((claimed, busy), (1, 7), "{claims:?}");

    let sales: Vec<_> = (0..4)
        .map(|i| sale_of("ping_1", &format!("lead_{i}"), "14.99", now))
        .collect();
    let outcomes = join_all(sales.iter().map(|s| store.record_sale(s, &[]))).await;
    let sold = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(StoreError::Conflict(_))))
        .count();
    assert_eq!((sold, refused), (1, 3), "{outcomes:?}");
    assert_eq!(books.sql.books().await, (1, 1, 3));
}

/// Sales on several connections at once add to the rollup without waiting for each other (on
/// PostgreSQL each connection has its own shard of an hour's rows); compaction folds the shards
/// of past hours into one row per group, and no report changes by a cent.
async fn concurrent_sales_keep_the_rollup_exact_through_compaction(books: Books) {
    let store = &*books.store;
    let hour = pingpost::store::hour_start(t0());
    let sales = join_all((0..12).map(|i| {
        let at = t0() + TimeDelta::seconds(i);
        async move { sell(store, &format!("ping_{i}"), &format!("lead_{i}"), at).await }
    }))
    .await;
    assert_eq!(sales.len(), 12);
    let returned = return_of(store, "lead_3", t0() + TimeDelta::minutes(5)).await;
    store.record_return(&returned).await.unwrap();
    if let Sql::Pg(_) = books.sql {
        // A shard left by another node's connection, as a row of its own (unless one of the
        // sales above already wrote shard 31: a connection's shard is its backend pid % 32).
        books
            .sql
            .all_or_nothing(&[format!(
                "insert into revenue_hourly (dimension, group_key, hour_start, shard, leads_sold, \
                 gross, payouts, margin, returns, returned_amount, returned_margin) values \
                 ('all', '', '{}', 31, 0, 0, 0, 0, 0, 0, 0) on conflict do nothing",
                hour.to_rfc3339()
            )])
            .await
            .unwrap();
    }
    let report = || rollup_by_dimension(store, hour);
    let expected = RevenueSums {
        leads_sold: 12,
        gross_cents: 12 * 1499,
        payouts_cents: 12 * 1199,
        margin_cents: 12 * 300,
        returns: 1,
        returned_cents: 1499,
        returned_margin_cents: 300,
    };
    let before = report().await;
    assert!(before.iter().all(|sums| *sums == expected), "{before:?}");

    // The current hour is left alone; then the hour is past and folded.
    store.compact_revenue_rollup(hour).await.unwrap();
    assert_eq!(report().await, before);
    store
        .compact_revenue_rollup(hour + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(report().await, before);
    if let Sql::Pg(_) = books.sql {
        assert_eq!(
            books
                .sql
                .count("select count(*) from revenue_hourly where shard <> 0")
                .await,
            0
        );
        assert_eq!(
            books
                .sql
                .count("select count(*) from revenue_hourly where dimension = 'all'")
                .await,
            1
        );
    }
}

/// Pings sent through the group-commit writer at once are committed (each caller hears only
/// once its ping is in the books), and one ping that cannot be written fails alone.
async fn the_ping_writer_commits_each_ping_and_isolates_a_bad_one(books: Books) {
    let store = &*books.store;
    store.insert_ping(&offer("ping_taken", t0())).await.unwrap();
    let writer = pingpost::store::PingWriter::start(books.store.clone());
    let results = join_all((0..40).map(|i| {
        let writer = writer.clone();
        async move {
            // Ping 17 reuses a recorded id: the database refuses it.
            let id = if i == 17 {
                "ping_taken".to_string()
            } else {
                format!("ping_{i}")
            };
            let written = writer.write(offer(&id, t0())).await;
            (i, written, store.get_ping(&id).await.unwrap().is_some())
        }
    }))
    .await;
    for (i, written, visible) in results {
        if i == 17 {
            assert!(
                matches!(written, Err(StoreError::Conflict(_))),
                "{written:?}"
            );
        } else {
            assert!(written.is_ok(), "ping {i}: {written:?}");
            assert!(visible, "ping {i} is in the books when its write returns");
        }
    }
    assert_eq!(books.sql.count("select count(*) from ping").await, 40);
    assert_eq!(books.sql.count("select count(*) from bid").await, 40 * 5);
}

/// Sales, an unsold post, claims and a return sent at once: each gets its own answer, a sale
/// refused half-way through its statements (after its ping was marked sold) leaves none of
/// them behind, and the others are booked whole.
async fn writes_at_once_fail_alone_and_leave_nothing_half_written(books: Books) {
    let store = &*books.store;
    let now = t0();
    sell(store, "ping_taken", "lead_taken", now).await;
    for i in 0..10 {
        store
            .insert_ping(&offer(&format!("ping_{i}"), now))
            .await
            .unwrap();
    }
    let returned = return_of(store, "lead_taken", now + TimeDelta::minutes(1)).await;
    let mut sales: Vec<_> = (0..8)
        .map(|i| sale_of(&format!("ping_{i}"), &format!("lead_{i}"), "14.99", now))
        .collect();
    // Refused after its ping is marked sold and its ledger rows are written: the lead id is taken.
    sales[4].lead_id = "lead_taken".into();
    sales[4].transaction.lead_id = "lead_taken".into();
    // Refused by the database's cap check, before it writes anything.
    sales[6].cap_windows = vec![pingpost::auction::CapWindow {
        key: "day:2026-03-02".into(),
        start: now - TimeDelta::hours(10),
        end: now + TimeDelta::hours(14),
        count_max: Some(1),
        spend_max_cents: None,
    }];
    let attempts = [attempt("accepted", now)];
    let rejected = [attempt("rejected", now)];
    let lease = now + TimeDelta::seconds(30);
    let (sold, unsold, claims, returns) = tokio::join!(
        join_all(sales.iter().map(|s| store.record_sale(s, &attempts))),
        store.record_unsold("ping_8", r#"{"status":"unsold"}"#, &rejected),
        join_all(["a", "b"].map(|h| store.claim_post("ping_9", h, now, lease))),
        store.record_return(&returned),
    );
    for (i, outcome) in sold.iter().enumerate() {
        match i {
            4 => assert!(
                matches!(outcome, Err(StoreError::Conflict(_))),
                "{outcome:?}"
            ),
            6 => assert!(
                matches!(outcome, Err(StoreError::CapExceeded)),
                "{outcome:?}"
            ),
            _ => assert!(outcome.is_ok(), "sale {i}: {outcome:?}"),
        }
    }
    unsold.unwrap();
    returns.unwrap();
    let claimed = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Claimed)))
        .count();
    assert_eq!(claimed, 1, "{claims:?}");

    // The refused sales left their pings open for another try, and nothing else.
    for ping in ["ping_4", "ping_6"] {
        let row = store.get_ping(ping).await.unwrap().unwrap();
        assert_eq!(row.status, PingStatus::Offer, "{ping}");
        assert_eq!(row.lead_id, None, "{ping}");
    }
    for refused in [&sales[4], &sales[6]] {
        let entries = books
            .sql
            .count(&format!(
                "select count(*) from ledger_entry where transaction_id = '{}'",
                refused.transaction.id
            ))
            .await;
        assert_eq!(entries, 0, "no ledger rows of a refused sale");
    }
    // lead_taken and the six sales that went through, with three entries each; the return
    // reverses lead_taken.
    assert_eq!(books.sql.books().await, (7, 8, 8 * 3));
    assert_eq!(
        books.sql.count("select count(*) from post_attempt").await,
        1 + 6 + 1
    );
    assert_eq!(
        books
            .sql
            .count(books.sql.named(
                "select cast(coalesce(sum(amount), 0) * 100 as bigint) from ledger_entry",
                "select coalesce(sum(amount_cents), 0) from ledger_entry",
            ))
            .await,
        0,
        "the books balance"
    );
    assert_eq!(
        store.get_ping("ping_8").await.unwrap().unwrap().status,
        PingStatus::Unsold
    );
}

/// SQLite's write-ahead log stays bounded under a steady stream of writes with readers
/// reading beside them: checkpoints must let the writer restart it (a checkpoint run beside a
/// continuous writer never catches up, and the log grew by gigabytes under load).
#[tokio::test]
async fn sqlite_keeps_its_write_ahead_log_bounded_under_steady_writes() {
    let books = fresh_sqlite().await;
    let store = books.store.clone();
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, reading) = (store.clone(), reading.clone());
            tokio::spawn(async move {
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    store.get_offer("ping_0").await.unwrap();
                }
            })
        })
        .collect();
    // About 9,000 pages (36 MB) of log without checkpoints; 1,000-page checkpoints keep ~4 MB.
    for batch in 0..200 {
        let pings: Vec<_> = (0..40)
            .map(|i| offer(&format!("ping_{batch}_{i}"), t0()))
            .collect();
        store.insert_pings(&pings).await.unwrap();
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    let path = books.url.trim_start_matches("sqlite://").to_string() + "-wal";
    let wal = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let db = std::fs::metadata(books.url.trim_start_matches("sqlite://"))
        .unwrap()
        .len();
    assert!(
        wal < 16 * 1024 * 1024,
        "the log holds {wal} bytes beside a database of {db}"
    );
}

/// A ping whose bid log has `bids` rows, each with its own buyer.
fn offer_with_bids(ping_id: &str, bids: usize) -> pingpost::store::NewPing {
    let mut ping = offer(ping_id, t0());
    ping.bids = (0..bids)
        .map(|i| bid(&format!("buyer{i:04}"), "no_bid", None, None, None))
        .collect();
    ping
}

/// PostgreSQL writes a batch that fits in one statement as one statement (the pings in a
/// `with`, the bids in its insert), and a larger one in a transaction of several: on both
/// sides of that line, every row is written, and a bad ping leaves nothing of the batch.
async fn a_batch_of_pings_is_written_whole_or_not_at_all_whatever_its_size(books: Books) {
    let store = &*books.store;
    let bids_of = |id: &str| format!("select count(*) from bid where ping_id = '{id}'");
    // 1,000 bid rows (one statement), 1,001 (several), and a batch of pings without bids.
    for (batch, sizes) in [
        ("a", vec![600, 400]),
        ("b", vec![600, 401]),
        ("c", vec![0, 0]),
    ] {
        let pings: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(n, bids)| offer_with_bids(&format!("ping_{batch}{n}"), *bids))
            .collect();
        store.insert_pings(&pings).await.unwrap();
        for (n, bids) in sizes.iter().enumerate() {
            let id = format!("ping_{batch}{n}");
            assert!(store.get_ping(&id).await.unwrap().is_some(), "{id}");
            assert_eq!(books.sql.count(&bids_of(&id)).await, *bids as i64, "{id}");
        }
    }
    // The same with a ping whose id is taken, last: nothing of either batch is written.
    for (batch, bids) in [("d", 400), ("e", 401)] {
        let fresh = offer_with_bids(&format!("ping_{batch}0"), 600);
        let taken = offer_with_bids("ping_a0", bids);
        assert!(
            matches!(
                store.insert_pings(&[fresh, taken]).await,
                Err(StoreError::Conflict(_))
            ),
            "batch {batch}"
        );
        let id = format!("ping_{batch}0");
        assert!(store.get_ping(&id).await.unwrap().is_none(), "{id}");
        assert_eq!(books.sql.count(&bids_of(&id)).await, 0, "{id}");
    }
    assert_eq!(books.sql.count("select count(*) from bid").await, 2_001);
}

// PostgreSQL only.

/// Sales written together share one statement (one database transaction), each gets its own
/// outcome, the rollup adds a batch's sales of a group up exactly, and a batch the database
/// refuses is written again sale by sale, so only the bad sale fails.
#[tokio::test]
async fn postgres_writes_concurrent_sales_together_and_a_bad_one_fails_alone() {
    with_fresh_pg(
        "postgres_writes_concurrent_sales_together_and_a_bad_one_fails_alone",
        |books| async move {
            let store = &*books.store;
            let pg = pg_store(&books.url).await;
            let now = t0();
            sell(store, "ping_taken", "lead_taken", now).await;
            for i in 0..6 {
                store
                    .insert_ping(&offer(&format!("ping_{i}"), now))
                    .await
                    .unwrap();
            }
            let attempts = [attempt("rejected", now), attempt("accepted", now)];
            fn batch<'a>(
                sales: &'a [pingpost::store::NewSale],
                attempts: &'a [pingpost::store::PostAttempt],
            ) -> Vec<(
                &'a pingpost::store::NewSale,
                &'a [pingpost::store::PostAttempt],
            )> {
                sales.iter().map(|s| (s, attempts)).collect()
            }
            let xmins = |leads: &str| {
                format!("select count(distinct xmin::text) from sale where lead_id in ({leads})")
            };

            // Three open pings and one already sold (under another lead id).
            let first: Vec<_> = ["0", "1", "2", "taken"]
                .iter()
                .map(|i| sale_of(&format!("ping_{i}"), &format!("lead_{i}_new"), "14.99", now))
                .collect();
            let outcomes = pg.record_sales(&batch(&first, &attempts)).await;
            assert!(outcomes[..3].iter().all(Result::is_ok), "{outcomes:?}");
            assert!(
                matches!(outcomes[3], Err(StoreError::Conflict(_))),
                "{outcomes:?}"
            );
            assert_eq!(
                books
                    .sql
                    .count(&xmins("'lead_0_new', 'lead_1_new', 'lead_2_new'"))
                    .await,
                1,
                "the three sales are one transaction"
            );

            // The second batch's last sale takes a sold lead id: the batch is refused whole,
            // then the two good sales go in alone and the bad one fails alone.
            let mut second: Vec<_> = ["3", "4", "5"]
                .iter()
                .map(|i| sale_of(&format!("ping_{i}"), &format!("lead_{i}_new"), "14.99", now))
                .collect();
            second[2].lead_id = "lead_taken".into();
            second[2].transaction.lead_id = "lead_taken".into();
            let outcomes = pg.record_sales(&batch(&second, &attempts)).await;
            assert!(outcomes[..2].iter().all(Result::is_ok), "{outcomes:?}");
            assert!(
                matches!(outcomes[2], Err(StoreError::Conflict(_))),
                "{outcomes:?}"
            );
            assert_eq!(
                store.get_ping("ping_5").await.unwrap().unwrap().status,
                PingStatus::Offer,
                "the refused sale left its ping open"
            );
            assert_eq!(
                books
                    .sql
                    .count(&format!(
                        "select count(*) from ledger_entry where transaction_id = '{}'",
                        second[2].transaction.id
                    ))
                    .await,
                0
            );

            // lead_taken and five new sales, three entries and two attempts each (one and
            // one for lead_taken), two dedupe keys each; the books balance and the rollup,
            // added up per group within each batch, equals the ledger.
            assert_eq!(books.sql.books().await, (6, 6, 18));
            assert_eq!(
                books.sql.count("select count(*) from post_attempt").await,
                1 + 5 * 2
            );
            assert_eq!(
                books.sql.count("select count(*) from dedupe_key").await,
                6 * 2
            );
            assert_eq!(
                books
                    .sql
                    .count("select cast(sum(amount) * 100 as bigint) from ledger_entry")
                    .await,
                0
            );
            let hour = pingpost::store::hour_start(now);
            for sums in rollup_by_dimension(store, hour).await {
                assert_eq!(sums.leads_sold, 6);
                assert_eq!(sums.gross_cents, 6 * 1499);
            }
        },
    )
    .await
}

/// A batch's unbalanced sale is refused alone (checked in Rust, as a single sale is); the
/// others are written.
#[tokio::test]
async fn postgres_refuses_an_unbalanced_sale_of_a_batch_alone() {
    with_fresh_pg(
        "postgres_refuses_an_unbalanced_sale_of_a_batch_alone",
        |books| async move {
            let store = &*books.store;
            let pg = pg_store(&books.url).await;
            let now = t0();
            for i in ["a", "b", "c"] {
                store
                    .insert_ping(&offer(&format!("ping_{i}"), now))
                    .await
                    .unwrap();
            }
            let mut sales: Vec<_> = ["a", "b", "c"]
                .iter()
                .map(|i| sale_of(&format!("ping_{i}"), &format!("lead_{i}"), "14.99", now))
                .collect();
            sales[1].transaction.entries[0].amount_cents += 1;
            let attempts = [attempt("accepted", now)];
            let batch: Vec<_> = sales.iter().map(|s| (s, &attempts[..])).collect();
            let outcomes = pg.record_sales(&batch).await;
            assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
            assert!(
                matches!(outcomes[1], Err(StoreError::Other(_))),
                "{outcomes:?}"
            );
            assert_eq!(
                store.get_ping("ping_b").await.unwrap().unwrap().status,
                PingStatus::Offer
            );
            assert_eq!(books.sql.books().await, (2, 2, 6));
        },
    )
    .await
}

/// The hour's revenue by each dimension from the rollup, each checked against the ledger's
/// (one group per dimension: the fixtures' sales share buyer, seller and vertical).
async fn rollup_by_dimension(store: &dyn Store, hour: DateTime<Utc>) -> Vec<RevenueSums> {
    let mut totals = Vec::new();
    for dimension in [
        RevenueDimension::All,
        RevenueDimension::Buyer,
        RevenueDimension::Seller,
        RevenueDimension::Vertical,
    ] {
        let query = |source| RevenueQuery {
            dimension,
            start: hour,
            end: hour + TimeDelta::hours(1),
            bucket_s: Some(pingpost::store::ROLLUP_BUCKET_S),
            source,
        };
        let rollup = store.revenue(&query(RevenueSource::Rollup)).await.unwrap();
        let ledger = store.revenue(&query(RevenueSource::Ledger)).await.unwrap();
        assert_eq!(rollup.len(), 1, "one cell per group and hour");
        assert_eq!(rollup[0].sums, ledger[0].sums, "rollup == ledger");
        totals.push(rollup[0].sums);
    }
    totals
}
