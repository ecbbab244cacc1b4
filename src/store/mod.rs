//! The system of record behind one interface: SQLite (embedded default) or PostgreSQL.

mod group_commit;
mod postgres;
mod reports;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::Money;
use crate::ledger::{Entry, Transaction, TransactionKind};

pub use group_commit::PingWriter;
pub use postgres::PgStore;
pub use reports::{
    hour_start, rollup_keys, AuctionCell, AuctionDimension, LedgerCursor, LedgerRow, RevenueCell,
    RevenueDimension, RevenueQuery, RevenueSource, RevenueSums, ROLLUP_BUCKET_S,
};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (a lead sold twice, a second return).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or did not answer in time.
    /// The sale would pass one of the buyer's caps, as the database counts them.
    #[error("the buyer's cap would be exceeded")]
    CapExceeded,
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingStatus {
    Offer,
    NoBid,
    Sold,
    Unsold,
}

impl PingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PingStatus::Offer => "offer",
            PingStatus::NoBid => "no_bid",
            PingStatus::Sold => "sold",
            PingStatus::Unsold => "unsold",
        }
    }

    pub fn parse(text: &str) -> Option<PingStatus> {
        Some(match text {
            "offer" => PingStatus::Offer,
            "no_bid" => PingStatus::NoBid,
            "sold" => PingStatus::Sold,
            "unsold" => PingStatus::Unsold,
            _ => return None,
        })
    }
}

/// One buyer's part in an auction, as recorded.
#[derive(Debug, Clone)]
pub struct BidRecord {
    pub buyer_id: String,
    /// `bid`, `no_bid`, `timeout`, `error`, or `below_floor`.
    pub outcome: &'static str,
    pub price: Option<Money>,
    pub floor: Money,
    pub bid_id: Option<String>,
    pub reason: Option<String>,
    pub latency_ms: i64,
    /// Place in the ranking (1 = winner) for valid bids at or above the floor.
    pub rank: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct NewPing {
    pub id: String,
    pub seller_id: String,
    pub vertical: String,
    pub sub_id: Option<String>,
    /// The non-PII lead fields as JSON text.
    pub lead_json: String,
    pub status: PingStatus,
    pub price: Option<Money>,
    pub payout: Option<Money>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub bids: Vec<BidRecord>,
}

#[derive(Debug, Clone)]
pub struct PingRow {
    pub id: String,
    pub seller_id: String,
    pub vertical: String,
    pub lead_json: String,
    pub status: PingStatus,
    pub payout: Option<Money>,
    pub expires_at: Option<DateTime<Utc>>,
    pub lead_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RankedBid {
    pub buyer_id: String,
    pub price: Money,
    pub bid_id: Option<String>,
}

/// The outcome of trying to take a ping for posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request may deliver the lead.
    Claimed,
    /// Another request is delivering it now.
    Busy { body_hash: String },
    /// It was posted already; the first result, to return again for the same body.
    Done {
        body_hash: String,
        result_json: String,
    },
}

/// Where a ping's posting stands, read without changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostState {
    Open,
    Busy {
        body_hash: String,
    },
    Done {
        body_hash: String,
        result_json: String,
    },
}

#[derive(Debug, Clone)]
pub struct PostAttempt {
    pub buyer_id: String,
    /// `accepted`, `rejected`, `timeout`, `error`, or `dedupe`.
    pub outcome: &'static str,
    pub price: Money,
    pub reason: Option<String>,
    pub latency_ms: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewSale {
    pub lead_id: String,
    pub ping_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    pub vertical: String,
    pub price: Money,
    pub payout: Money,
    pub buyer_lead_id: Option<String>,
    pub transaction: Transaction,
    /// Keyed hashes of the lead's phone and email, for this buyer's dedupe.
    pub dedupe_keys: Vec<String>,
    pub result_json: String,
    /// The buyer's cap windows: the database re-checks committed sales against them.
    pub cap_windows: Vec<crate::auction::CapWindow>,
}

#[derive(Debug, Clone)]
pub struct SaleRow {
    pub lead_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    pub price: Money,
    pub transaction_id: String,
    pub entries: Vec<Entry>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewReturn {
    pub lead_id: String,
    pub buyer_id: String,
    pub reason: String,
    pub transaction: Transaction,
}

/// One ledger entry with its transaction's facts, as statements and exports show it.
#[derive(Debug, Clone)]
pub struct EntryRow {
    pub transaction_id: String,
    pub time: DateTime<Utc>,
    pub kind: TransactionKind,
    pub account: String,
    pub amount_cents: i64,
    pub lead_id: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies the migrations of this backend; safe to run again.
    async fn migrate(&self) -> StoreResult<()>;
    /// Succeeds when the database answers.
    async fn check(&self) -> StoreResult<()>;
    /// The server's secret for keyed hashes, made once and kept in the database.
    async fn server_secret(&self) -> StoreResult<Vec<u8>>;

    /// Records pings and every buyer's outcome in one transaction: all of them, or none.
    async fn insert_pings(&self, pings: &[NewPing]) -> StoreResult<()>;
    /// Records one ping and every buyer's outcome in one transaction.
    async fn insert_ping(&self, ping: &NewPing) -> StoreResult<()> {
        self.insert_pings(std::slice::from_ref(ping)).await
    }
    /// Records a ping for the auction that waits on it. SQLite's writer thread groups the pings
    /// it finds waiting into one transaction; on the other backend this is `insert_ping`, and
    /// the exchange groups them first (`PingWriter`).
    async fn log_ping(&self, ping: NewPing) -> StoreResult<()> {
        self.insert_ping(&ping).await
    }
    /// Whether each write runs whole on a thread of the store's own, where a request that goes
    /// away cannot cut it short, and pings are grouped there (SQLite). Otherwise the exchange
    /// runs writes on a runtime of its own and groups pings itself.
    fn runs_writes_itself(&self) -> bool {
        false
    }
    async fn get_ping(&self, id: &str) -> StoreResult<Option<PingRow>>;
    /// A ping with its valid bids, best first, in one read: what a post starts from.
    async fn get_offer(&self, id: &str) -> StoreResult<Option<(PingRow, Vec<RankedBid>)>>;

    /// Takes the ping for posting unless someone holds it (a claim older than its lease is void).
    async fn claim_post(
        &self,
        ping_id: &str,
        body_hash: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Claim>;
    async fn post_state(&self, ping_id: &str) -> StoreResult<PostState>;
    /// Gives a claim back after a failure that sold nothing, so the offer can be posted again.
    async fn release_claim(&self, ping_id: &str) -> StoreResult<()>;
    /// Whether this buyer bought a lead with one of these keys since `since`.
    async fn dedupe_hit(
        &self,
        buyer_id: &str,
        keys: &[String],
        since: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// A buyer's sales in `[start, end)`: how many, and their total price in cents.
    async fn buyer_totals(
        &self,
        buyer_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<(i64, i64)>;
    /// Sale, ledger transaction, dedupe keys, attempts and the ping's result, in one transaction.
    /// Refuses with `CapExceeded` when the buyer's committed sales plus this one pass a cap.
    async fn record_sale(&self, sale: &NewSale, attempts: &[PostAttempt]) -> StoreResult<()>;
    /// The ping ends unsold; its attempts and result are kept.
    async fn record_unsold(
        &self,
        ping_id: &str,
        result_json: &str,
        attempts: &[PostAttempt],
    ) -> StoreResult<()>;

    async fn get_sale(&self, lead_id: &str) -> StoreResult<Option<SaleRow>>;
    /// The return and its reversing transaction; `Conflict` if the lead was returned already.
    async fn record_return(&self, ret: &NewReturn) -> StoreResult<()>;
    /// An account's entries with `from <= time < to`, oldest first.
    async fn account_entries(
        &self,
        account: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<EntryRow>>;

    /// Revenue per group (and per time bucket, when asked) of the sales and returns with
    /// `start <= time < end`. A `Rollup` query needs whole UTC hours for bounds and buckets.
    async fn revenue(&self, query: &RevenueQuery) -> StoreResult<Vec<RevenueCell>>;
    /// Rebuilds the hourly revenue rollup from the ledger, in one transaction.
    async fn rebuild_revenue_rollup(&self) -> StoreResult<()>;
    /// Folds the rollup's per-connection shards of the hours before `before` into one row per
    /// group and hour (PostgreSQL; SQLite has one writer and no shards). Sums are unchanged.
    async fn compact_revenue_rollup(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Up to `limit` ledger entries with `start <= time < end`, after `after`, in time order.
    async fn ledger_page(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        after: Option<LedgerCursor>,
        limit: i64,
    ) -> StoreResult<Vec<LedgerRow>>;
    /// Auction counts per group for pings, bid requests and post attempts in `[start, end)`,
    /// one cell per group and query; the caller adds up the cells of a group.
    async fn auction_counts(
        &self,
        dimension: AuctionDimension,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<Vec<AuctionCell>>;
}

pub type DynStore = Arc<dyn Store>;

/// Connections one node may hold to PostgreSQL.
const PG_POOL_MAX: u32 = 16;
/// How long a request waits for a PostgreSQL connection before it is `Unavailable`.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the store the URL names: `sqlite:…`, or `postgres://…` / `postgresql://…`.
pub async fn connect(database_url: &str) -> anyhow::Result<DynStore> {
    connect_with(database_url, PG_POOL_MAX, PG_ACQUIRE_TIMEOUT).await
}

/// As `connect`, with the PostgreSQL pool's size and acquire timeout (SQLite keeps its own:
/// one writer at a time, whatever the pool).
pub async fn connect_with(
    database_url: &str,
    pool_max: u32,
    acquire_timeout: std::time::Duration,
) -> anyhow::Result<DynStore> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(database_url).await?))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let store = PgStore::connect(database_url, pool_max, acquire_timeout).await?;
        Ok(Arc::new(store))
    } else {
        // The URL itself is not repeated: it may carry a password.
        anyhow::bail!("database_url must start with sqlite:, postgres:// or postgresql://")
    }
}
