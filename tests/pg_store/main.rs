//! The PostgreSQL store through the `Store` trait, and what each database refuses by itself.
//!
//! Every scenario runs on both backends, so the PostgreSQL store is held to the SQLite one's
//! behaviour and both schemas prove their own guarantees against direct SQL. The PostgreSQL
//! side needs `PINGPOST_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`):
//! each test creates its own database there and drops it afterwards. Without it those tests
//! say they were skipped and pass; the SQLite side always runs, on a temporary file.

use std::time::Duration;

use pingpost::store::{PgStore, Store, StoreError};

/// Makes `postgres::<scenario>` and `sqlite::<scenario>` tests of each scenario function.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    crate::fixtures::with_fresh_pg(stringify!($scenario), |books| async move { super::$scenario(books).await }).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    super::$scenario(crate::fixtures::fresh_sqlite().await).await
                }
            )*
        }
    };
}

mod fixtures;
mod ledger_refusals;
mod store_round_trips;

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
