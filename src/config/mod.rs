//! Configuration: `exchange.toml` and one file per buyer, parsed strictly into checked types.

mod buyer;
mod error;
pub mod keys;
mod marketplace;
mod raw;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use rust_decimal::Decimal;

pub use buyer::{Bidding, Buyer, Caps, Filter, FilterRule, Schedule};
pub use error::ConfigError;
pub use keys::{hash_key, KeyHash};
pub use marketplace::Marketplace;

use crate::buyer_client::Endpoint;
use crate::domain::{FieldSpec, FieldType, Money, Vertical};
use raw::{RawExchange, RawField, RawVertical, TOP_LEVEL_KEYS};

#[derive(Debug, Clone)]
pub struct AuctionSettings {
    pub tmax_ms: u64,
    pub offer_ttl_s: u64,
    pub max_post_attempts: u32,
}

#[derive(Debug, Clone)]
pub struct Seller {
    pub id: String,
    pub payout_share: Decimal,
    pub floor: Option<Money>,
    pub rate_per_s: u32,
    pub burst: u32,
}

/// Who a request's API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Seller(String),
    Buyer(String),
    Finance(String),
    Admin(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub listen: String,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    pub buyers_dir: PathBuf,
    pub currency: String,
    pub return_window_days: u32,
    pub body_limit_bytes: usize,
    pub db_pool_max: u32,
    pub db_acquire_timeout_ms: u64,
    pub auction: AuctionSettings,
    pub verticals: HashMap<String, Arc<Vertical>>,
    pub sellers: HashMap<String, Arc<Seller>>,
    /// Seller, finance and admin keys. Buyer keys live in the marketplace, which reloads.
    pub keys: HashMap<KeyHash, Principal>,
    pub marketplace: Arc<Marketplace>,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://pingpost.db";
const VERTICAL_FIELDS_MAX: usize = 128;
const TMAX_MS_MAX: u64 = 60_000;

impl Config {
    /// Reads the file and applies `PINGPOST_<KEY>` overrides from the process environment.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::new(file, "(file)", format!("cannot be read: {e}")))?;
        Config::from_str_with_env(file, &text, std::env::vars())
    }

    pub fn from_str_with_env(
        file: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::new(file, "(syntax)", e.message().to_string()))?;
        apply_env_overrides(&mut table, env);
        let raw: RawExchange = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::from_serde(file, e))?;
        Config::from_raw(file, raw)
    }

    fn from_raw(file: &Path, raw: RawExchange) -> Result<Config, ConfigError> {
        let err = |key: &str, problem: &str| ConfigError::new(file, key, problem);
        if raw.auction.tmax_ms < 50 || raw.auction.tmax_ms > TMAX_MS_MAX {
            return Err(err("auction.tmax_ms", "must be between 50 and 60000"));
        }
        if raw.auction.offer_ttl_s == 0 || raw.auction.offer_ttl_s > 86_400 {
            return Err(err("auction.offer_ttl_s", "must be between 1 and 86400"));
        }
        if raw.auction.max_post_attempts == 0 || raw.auction.max_post_attempts > 10 {
            return Err(err("auction.max_post_attempts", "must be between 1 and 10"));
        }
        if raw.body_limit_bytes < 1024 || raw.body_limit_bytes > 16 * 1024 * 1024 {
            return Err(err("body_limit_bytes", "must be between 1024 and 16777216"));
        }
        if raw.db_pool_max == 0 || raw.db_pool_max > 1000 {
            return Err(err("db_pool_max", "must be between 1 and 1000"));
        }
        if raw.db_acquire_timeout_ms < 10 || raw.db_acquire_timeout_ms > 60_000 {
            return Err(err("db_acquire_timeout_ms", "must be between 10 and 60000"));
        }
        if raw.currency.len() != 3 || !raw.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(err("currency", "must be a three-letter ISO 4217 code"));
        }
        parse_url(file, "listen", &format!("http://{}", raw.listen))?;

        let mut verticals = HashMap::new();
        for (i, raw_vertical) in raw.verticals.into_iter().enumerate() {
            let vertical = parse_vertical(file, i, raw_vertical)?;
            if verticals.contains_key(&vertical.id) {
                return Err(err(
                    &format!("verticals[{i}].id"),
                    &format!("duplicate id `{}`", vertical.id),
                ));
            }
            verticals.insert(vertical.id.clone(), Arc::new(vertical));
        }

        let mut keys = HashMap::new();
        let mut add_key = |key_name: String, hash: Option<KeyHash>, who: Principal| {
            let hash = hash.ok_or_else(|| {
                ConfigError::new(file, &key_name, "needs api_key or api_key_sha256")
            })?;
            match keys.insert(hash, who) {
                Some(_) => Err(ConfigError::new(
                    file,
                    &key_name,
                    "the same key is given to two principals",
                )),
                None => Ok(()),
            }
        };
        let mut sellers = HashMap::new();
        for (i, s) in raw.sellers.into_iter().enumerate() {
            let at = |key: &str| format!("sellers[{i}].{key}");
            check_id(file, &at("id"), &s.id)?;
            let share: Decimal = s
                .payout_share
                .parse()
                .ok()
                .filter(|d: &Decimal| *d >= Decimal::ZERO && *d <= Decimal::ONE)
                .ok_or_else(|| err(&at("payout_share"), "must be a decimal between 0 and 1"))?;
            let floor = s
                .floor
                .as_deref()
                .map(|f| parse_money(file, &at("floor"), f))
                .transpose()?;
            let rate_per_s = s.rate_per_s.unwrap_or(100);
            if rate_per_s == 0 {
                return Err(err(&at("rate_per_s"), "must be at least 1"));
            }
            let burst = s.burst.unwrap_or(rate_per_s.saturating_mul(2));
            if burst == 0 {
                return Err(err(&at("burst"), "must be at least 1"));
            }
            let hash = keys::parse_key(
                file,
                &format!("sellers[{i}]."),
                s.api_key.as_deref(),
                s.api_key_sha256.as_deref(),
            )?;
            add_key(at("api_key"), hash, Principal::Seller(s.id.clone()))?;
            let seller = Seller {
                id: s.id.clone(),
                payout_share: share,
                floor,
                rate_per_s,
                burst,
            };
            if sellers.insert(s.id.clone(), Arc::new(seller)).is_some() {
                return Err(err(&at("id"), &format!("duplicate id `{}`", s.id)));
            }
        }
        for (table, list) in [
            ("finance_keys", raw.finance_keys),
            ("admin_keys", raw.admin_keys),
        ] {
            for (i, k) in list.into_iter().enumerate() {
                let prefix = format!("{table}[{i}].");
                let hash = keys::parse_key(
                    file,
                    &prefix,
                    k.api_key.as_deref(),
                    k.api_key_sha256.as_deref(),
                )?;
                let who = if table == "finance_keys" {
                    Principal::Finance(k.name)
                } else {
                    Principal::Admin(k.name)
                };
                add_key(format!("{prefix}api_key"), hash, who)?;
            }
        }

        let base = file.parent().unwrap_or(Path::new("."));
        let buyers_dir = base.join(&raw.buyers_dir);
        let marketplace = Marketplace::load(&buyers_dir, &verticals, &sellers, &keys)?;
        Ok(Config {
            file: file.to_path_buf(),
            listen: raw.listen,
            database_url: raw
                .database_url
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()),
            redis_url: raw.redis_url,
            redis_key_prefix: raw.redis_key_prefix,
            buyers_dir,
            currency: raw.currency,
            return_window_days: raw.return_window_days,
            body_limit_bytes: raw.body_limit_bytes,
            db_pool_max: raw.db_pool_max,
            db_acquire_timeout_ms: raw.db_acquire_timeout_ms,
            auction: AuctionSettings {
                tmax_ms: raw.auction.tmax_ms,
                offer_ttl_s: raw.auction.offer_ttl_s,
                max_post_attempts: raw.auction.max_post_attempts,
            },
            verticals,
            sellers,
            keys,
            marketplace: Arc::new(marketplace),
        })
    }

    /// Re-reads the buyers directory against this configuration; the caller swaps it in.
    pub fn reload_marketplace(&self) -> Result<Marketplace, ConfigError> {
        Marketplace::load(&self.buyers_dir, &self.verticals, &self.sellers, &self.keys)
    }
}

/// `PINGPOST_<KEY>` replaces a top-level key. The value is read as TOML when it parses as
/// a TOML value (numbers, booleans, inline tables), and as a plain string otherwise.
fn apply_env_overrides(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) {
    for (name, value) in env {
        let Some(key) = name.strip_prefix("PINGPOST_") else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            continue;
        }
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        table.insert(key, parsed);
    }
}

fn check_id(file: &Path, key: &str, id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            file,
            key,
            "ids are 1 to 64 letters, digits, - or _",
        ))
    }
}

pub(crate) fn parse_money(file: &Path, key: &str, text: &str) -> Result<Money, ConfigError> {
    Money::parse(text).map_err(|e| ConfigError::new(file, key, format!("amount {e}")))
}

/// A buyer URL, parsed once here: every request to the buyer uses it as it is, instead of
/// parsing the text again per request (a few percent of the exchange's CPU under load).
pub(crate) fn parse_url(file: &Path, key: &str, text: &str) -> Result<Endpoint, ConfigError> {
    Endpoint::parse(text).map_err(|reason| ConfigError::new(file, key, reason))
}

fn parse_vertical(file: &Path, index: usize, raw: RawVertical) -> Result<Vertical, ConfigError> {
    check_id(file, &format!("verticals[{index}].id"), &raw.id)?;
    let at = |key: &str| format!("verticals[{index}].{key}");
    let floor = raw
        .floor
        .as_deref()
        .map(|f| parse_money(file, &at("floor"), f))
        .transpose()?
        .unwrap_or(Money::ZERO);
    if raw.fields.is_empty() || raw.fields.len() > VERTICAL_FIELDS_MAX {
        return Err(ConfigError::new(
            file,
            at("fields"),
            format!("needs 1 to {VERTICAL_FIELDS_MAX} fields"),
        ));
    }
    let mut fields: Vec<FieldSpec> = Vec::new();
    for (j, raw_field) in raw.fields.into_iter().enumerate() {
        let key = at(&format!("fields[{j}]"));
        if fields.iter().any(|f| f.name == raw_field.name) {
            return Err(ConfigError::new(
                file,
                format!("{key}.name"),
                format!("duplicate field `{}`", raw_field.name),
            ));
        }
        fields.push(parse_field(file, &key, raw_field)?);
    }
    Ok(Vertical::new(raw.id, floor, fields))
}

fn parse_field(file: &Path, key: &str, raw: RawField) -> Result<FieldSpec, ConfigError> {
    let err = |k: &str, problem: String| ConfigError::new(file, format!("{key}.{k}"), problem);
    check_id(file, &format!("{key}.name"), &raw.name)?;
    let not_for = |k: &str, present: bool| -> Result<(), ConfigError> {
        if present {
            Err(err(k, format!("does not apply to type {}", raw.ty)))
        } else {
            Ok(())
        }
    };
    let int = |k: &str, v: &Option<toml::Value>| -> Result<Option<i64>, ConfigError> {
        v.as_ref()
            .map(|v| {
                v.as_integer()
                    .ok_or_else(|| err(k, "must be an integer".into()))
            })
            .transpose()
    };
    let dec = |k: &str, v: &Option<toml::Value>| -> Result<Option<Decimal>, ConfigError> {
        v.as_ref()
            .map(|v| {
                let text = match v {
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Float(f) => f.to_string(),
                    _ => String::new(),
                };
                text.parse().map_err(|_| err(k, "must be a number".into()))
            })
            .transpose()
    };
    let numeric = matches!(raw.ty.as_str(), "integer" | "decimal");
    not_for("min", raw.min.is_some() && !numeric)?;
    not_for("max", raw.max.is_some() && !numeric)?;
    not_for("values", raw.values.is_some() && raw.ty != "enum")?;
    not_for("max_len", raw.max_len.is_some() && raw.ty != "string")?;
    not_for("pattern", raw.pattern.is_some() && raw.ty != "string")?;
    let ty = match raw.ty.as_str() {
        "string" => FieldType::String {
            max_len: raw.max_len,
            pattern: raw
                .pattern
                .as_deref()
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| err("pattern", format!("is not a regular expression: {e}")))
                })
                .transpose()?,
        },
        "integer" => FieldType::Integer {
            min: int("min", &raw.min)?,
            max: int("max", &raw.max)?,
        },
        "decimal" => FieldType::Decimal {
            min: dec("min", &raw.min)?,
            max: dec("max", &raw.max)?,
        },
        "boolean" => FieldType::Boolean,
        "enum" => {
            let values = raw
                .values
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err("values", "an enum needs values".into()))?;
            FieldType::Enum { values }
        }
        "date" => FieldType::Date,
        "zip" => FieldType::Zip,
        "us_state" => FieldType::UsState,
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        other => return Err(err("type", format!("unknown type `{other}`"))),
    };
    Ok(FieldSpec {
        name: raw.name,
        ty,
        required: raw.required,
        pii: raw.pii,
    })
}
