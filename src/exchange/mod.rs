//! The exchange: the one place the flow lives. Routes parse and authorise, then call here.

mod auction;
mod caps;
mod offers;
mod ping;
mod post;
mod reports;
mod returns;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::buyer_client::BuyerClient;
use crate::config::{Config, Marketplace};
use crate::metrics::StoreWrite;
use crate::state::SharedState;
use crate::store::{DynStore, PingWriter, StoreError, StoreResult};

pub use auction::AuctionOutcome;
pub use ping::{PingInput, PingState, PingView};
pub use post::{PostInput, PostResult, PostStatus, UnsoldReason};
pub use returns::{ReturnReceipt, ReturnStatus, Statement, StatementLine, STATEMENT_DAYS_MAX};

pub struct Exchange {
    pub config: Arc<Config>,
    marketplace: RwLock<Arc<Marketplace>>,
    paused: RwLock<HashSet<String>>,
    pub store: DynStore,
    pub state: Arc<dyn SharedState>,
    client: BuyerClient,
    /// Added to the system clock: zero in service; tests and simulations move time forward.
    clock_offset_ms: AtomicI64,
    /// Key for the keyed hashes of personal data (dedupe keys, post body hashes).
    hash_key: Vec<u8>,
    /// Group commit of the ping log; `None` outside a tokio runtime, where each ping is
    /// written on its own, and when the store groups them itself (SQLite).
    ping_writer: Option<PingWriter>,
    /// The runtime the exchange was built on (the main thread's, in `serve`), where the
    /// writes of posts run: see `Exchange::write`. `None` when the store runs each write on
    /// a thread of its own (SQLite).
    writes: Option<tokio::runtime::Handle>,
    /// The offers this node made lately, for their posts (`offers.rs`).
    offers: offers::RecentOffers,
}

impl Exchange {
    pub fn new(
        config: Arc<Config>,
        store: DynStore,
        state: Arc<dyn SharedState>,
        client: BuyerClient,
        hash_key: Vec<u8>,
    ) -> Exchange {
        let writes = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|_| !store.runs_writes_itself());
        let ping_writer = writes.as_ref().map(|_| PingWriter::start(store.clone()));
        Exchange {
            ping_writer,
            writes,
            marketplace: RwLock::new(config.marketplace.clone()),
            paused: RwLock::default(),
            config,
            store,
            state,
            client,
            hash_key,
            clock_offset_ms: AtomicI64::new(0),
            offers: offers::RecentOffers::default(),
        }
    }

    /// Runs a store write (a claim, a sale, an unsold post) on the runtime the exchange was
    /// built on, and waits for it. A request's own task runs on a busy HTTP worker; a write
    /// transaction holds a row lock (PostgreSQL) from statement to statement, and on the
    /// worker each hand-back waited behind every other request's work. There, only writes and
    /// the ping log run. A write, once begun, also finishes even if the request that asked for
    /// it goes away. SQLite's store runs each write whole on its writer's thread, which gives
    /// both already: its writes are awaited here directly.
    /// Its time, from asking to done, goes to `pingpost_store_write_seconds` under `kind`.
    pub(crate) async fn write<T, F>(&self, kind: StoreWrite, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = StoreResult<T>> + Send + 'static,
    {
        let asked = Instant::now();
        let done = match &self.writes {
            Some(runtime) => runtime.spawn(write).await.map_err(|e| {
                StoreError::Other(anyhow::anyhow!("a store write did not finish: {e}"))
            }),
            None => Ok(write.await),
        };
        crate::metrics::METRICS
            .store_writes
            .observe(kind, asked.elapsed());
        done?
    }

    /// The exchange's time: every expiry, window and ledger time is read from here.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the exchange's clock forward, for tests and simulations of expiry and windows.
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.clock_offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }

    /// How long a post may hold a ping: every attempt at the slowest buyer's timeout, plus slack.
    pub fn post_lease(&self) -> std::time::Duration {
        let slowest_ms = self.marketplace().timeout_ms_max().unwrap_or(1_000);
        std::time::Duration::from_millis(
            slowest_ms * self.config.auction.max_post_attempts as u64 + 5_000,
        )
    }

    /// The marketplace as it is now. An auction keeps the snapshot it started with.
    pub fn marketplace(&self) -> Arc<Marketplace> {
        self.marketplace
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the buyers directory and swaps it in whole; on an error nothing changes.
    /// Auctions already running keep the marketplace they started with.
    pub fn reload(&self) -> Result<usize, crate::config::ConfigError> {
        let market = self.config.reload_marketplace()?;
        let buyers = market.buyers.len();
        self.replace_marketplace(market);
        Ok(buyers)
    }

    pub fn replace_marketplace(&self, market: Marketplace) {
        *self.marketplace.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(market);
    }

    pub fn is_paused(&self, buyer_id: &str) -> bool {
        self.paused
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(buyer_id)
    }

    pub fn set_paused(&self, buyer_id: &str, paused: bool) {
        let mut set = self.paused.write().unwrap_or_else(|e| e.into_inner());
        if paused {
            set.insert(buyer_id.to_string());
        } else {
            set.remove(buyer_id);
        }
    }

    /// A seller's ping, post or direct post against its rate limit. When the limiter cannot be
    /// reached the request passes: limits protect capacity, and losing them briefly costs
    /// less than refusing every seller.
    pub async fn admit(
        &self,
        seller: &crate::config::Seller,
    ) -> Result<(), crate::error::ApiError> {
        match self
            .state
            .rate_limit(&seller.id, seller.rate_per_s, seller.burst)
            .await
        {
            Ok(crate::state::RateDecision::Allow) => Ok(()),
            Ok(crate::state::RateDecision::Limited(wait)) => Err(
                crate::error::ApiError::rate_limited(wait.as_secs_f64().ceil() as u64),
            ),
            Err(e) => {
                tracing::warn!(seller = %seller.id, error = %e, "rate limiter unavailable; request admitted");
                Ok(())
            }
        }
    }

    /// HMAC-SHA256 under the server's key: personal data is never stored or compared in clear.
    pub fn keyed_hash(&self, data: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.hash_key).expect("HMAC takes a key of any length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }
}
