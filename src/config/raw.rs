//! The configuration files as written: serde structs that refuse unknown keys.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExchange {
    #[serde(default = "default_listen")]
    pub listen: String,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// Every Redis key starts with this, so several exchanges can share one Redis.
    #[serde(default = "default_redis_key_prefix")]
    pub redis_key_prefix: String,
    #[serde(default = "default_buyers_dir")]
    pub buyers_dir: String,
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default = "default_return_window_days")]
    pub return_window_days: u32,
    /// Largest request body the API accepts.
    #[serde(default = "default_body_limit_bytes")]
    pub body_limit_bytes: usize,
    /// PostgreSQL pool: most connections, and how long a request waits for one.
    #[serde(default = "default_db_pool_max")]
    pub db_pool_max: u32,
    #[serde(default = "default_db_acquire_timeout_ms")]
    pub db_acquire_timeout_ms: u64,
    #[serde(default)]
    pub auction: RawAuction,
    #[serde(default)]
    pub verticals: Vec<RawVertical>,
    #[serde(default)]
    pub sellers: Vec<RawSeller>,
    #[serde(default)]
    pub finance_keys: Vec<RawNamedKey>,
    #[serde(default)]
    pub admin_keys: Vec<RawNamedKey>,
}

/// The top-level keys, for `PINGPOST_<KEY>` overrides.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "redis_url",
    "redis_key_prefix",
    "buyers_dir",
    "currency",
    "return_window_days",
    "body_limit_bytes",
    "db_pool_max",
    "db_acquire_timeout_ms",
    "auction",
    "verticals",
    "sellers",
    "finance_keys",
    "admin_keys",
];

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_redis_key_prefix() -> String {
    "pingpost:".into()
}
fn default_buyers_dir() -> String {
    "buyers".into()
}
fn default_currency() -> String {
    "USD".into()
}
fn default_return_window_days() -> u32 {
    7
}
fn default_db_pool_max() -> u32 {
    16
}
fn default_db_acquire_timeout_ms() -> u64 {
    3000
}
fn default_body_limit_bytes() -> usize {
    64 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuction {
    #[serde(default = "default_tmax_ms")]
    pub tmax_ms: u64,
    #[serde(default = "default_offer_ttl_s")]
    pub offer_ttl_s: u64,
    #[serde(default = "default_max_post_attempts")]
    pub max_post_attempts: u32,
}

impl Default for RawAuction {
    fn default() -> Self {
        RawAuction {
            tmax_ms: default_tmax_ms(),
            offer_ttl_s: default_offer_ttl_s(),
            max_post_attempts: default_max_post_attempts(),
        }
    }
}

fn default_tmax_ms() -> u64 {
    1000
}
fn default_offer_ttl_s() -> u64 {
    120
}
fn default_max_post_attempts() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVertical {
    pub id: String,
    pub floor: Option<String>,
    pub fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub pii: bool,
    pub min: Option<toml::Value>,
    pub max: Option<toml::Value>,
    pub values: Option<Vec<String>>,
    pub max_len: Option<usize>,
    pub pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeller {
    pub id: String,
    pub api_key: Option<String>,
    pub api_key_sha256: Option<String>,
    pub payout_share: String,
    pub floor: Option<String>,
    pub rate_per_s: Option<u32>,
    pub burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNamedKey {
    pub name: String,
    pub api_key: Option<String>,
    pub api_key_sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBuyer {
    pub id: String,
    pub name: Option<String>,
    pub verticals: Vec<String>,
    #[serde(default = "default_status")]
    pub status: String,
    pub ping_url: Option<String>,
    pub post_url: String,
    pub fixed_price: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    pub signing_secret: String,
    pub api_key: Option<String>,
    pub api_key_sha256: Option<String>,
    pub max_bid: Option<String>,
    pub floor: Option<String>,
    #[serde(default)]
    pub sellers_allow: Vec<String>,
    #[serde(default)]
    pub sellers_block: Vec<String>,
    #[serde(default)]
    pub dedupe_days: u32,
    /// Most requests in flight to this buyer at once; more are not sent.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    #[serde(default)]
    pub filters: BTreeMap<String, RawFilter>,
    pub caps: Option<RawCaps>,
    pub schedule: Option<RawSchedule>,
}

fn default_status() -> String {
    "active".into()
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_max_in_flight() -> u32 {
    256
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    #[serde(rename = "in")]
    pub in_: Option<Vec<toml::Value>>,
    pub not_in: Option<Vec<toml::Value>>,
    pub prefix: Option<Vec<String>>,
    pub min: Option<toml::Value>,
    pub max: Option<toml::Value>,
    pub eq: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaps {
    pub timezone: Option<String>,
    pub hourly_count: Option<u32>,
    pub daily_count: Option<u32>,
    pub daily_spend: Option<String>,
    pub weekly_count: Option<u32>,
    pub weekly_spend: Option<String>,
    pub monthly_count: Option<u32>,
    pub monthly_spend: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub timezone: String,
    pub days: Option<Vec<String>>,
    pub hours: Option<String>,
}
