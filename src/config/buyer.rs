//! A buyer as the exchange uses it, parsed and checked from its `buyers_dir/<id>.toml` file.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde_json::Value;

use super::keys::{parse_key, KeyHash};
use super::raw::{RawBuyer, RawCaps, RawFilter, RawSchedule};
use super::{parse_money, parse_url, ConfigError, Seller};
use crate::buyer_client::Endpoint;
use crate::domain::{FieldSpec, FieldType, Money, Sensitive, Vertical};
use crate::metrics::BuyerBidMetrics;

#[derive(Debug, Clone)]
pub enum Bidding {
    /// Asked for a bid on every eligible lead.
    Ping { url: Endpoint },
    /// Bids this price on every eligible lead without being asked.
    Fixed { price: Money },
}

#[derive(Debug, Clone)]
pub enum FilterRule {
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Prefix(Vec<String>),
    Min(Decimal),
    Max(Decimal),
    Eq(Value),
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub field: String,
    pub rule: FilterRule,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub timezone: Tz,
    /// Monday first.
    pub days: [bool; 7],
    pub start_minute: u32,
    /// Exclusive; `start_minute > end_minute` wraps past midnight.
    pub end_minute: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Caps {
    pub timezone: Option<Tz>,
    pub hourly_count: Option<u32>,
    pub daily_count: Option<u32>,
    pub daily_spend: Option<Money>,
    pub weekly_count: Option<u32>,
    pub weekly_spend: Option<Money>,
    pub monthly_count: Option<u32>,
    pub monthly_spend: Option<Money>,
}

impl Caps {
    /// True when the buyer sets no limit at all (most buyers): no counters, no reservations.
    pub fn is_empty(&self) -> bool {
        self.hourly_count.is_none()
            && self.daily_count.is_none()
            && self.daily_spend.is_none()
            && self.weekly_count.is_none()
            && self.weekly_spend.is_none()
            && self.monthly_count.is_none()
            && self.monthly_spend.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Buyer {
    pub id: String,
    pub name: String,
    pub verticals: Vec<String>,
    pub active: bool,
    pub bidding: Bidding,
    pub post_url: Endpoint,
    pub timeout_ms: u64,
    pub signing_secret: Sensitive<String>,
    pub api_key_hash: Option<KeyHash>,
    pub max_bid: Option<Money>,
    pub floor: Option<Money>,
    pub sellers_allow: HashSet<String>,
    pub sellers_block: HashSet<String>,
    pub dedupe_days: u32,
    pub max_in_flight: u32,
    pub filters: Vec<Filter>,
    pub caps: Caps,
    pub schedule: Option<Schedule>,
    /// Its bid metrics' handles, taken at its first auction: not configuration, kept here
    /// so that an auction reaches them without looking the buyer up by id.
    pub bid_metrics: OnceLock<BuyerBidMetrics>,
}

#[cfg(test)]
impl Buyer {
    /// An active pinged buyer of `auto` at `base` (`/bid`, `/post`), with no filters or caps.
    pub(crate) fn for_tests(id: &str, base: &str) -> Buyer {
        Buyer {
            id: id.to_string(),
            name: format!("buyer {id}"),
            verticals: vec!["auto".to_string()],
            active: true,
            bidding: Bidding::Ping {
                url: Endpoint::parse(&format!("{base}/bid")).expect("a test URL"),
            },
            post_url: Endpoint::parse(&format!("{base}/post")).expect("a test URL"),
            timeout_ms: 100,
            signing_secret: Sensitive::new("secret".into()),
            api_key_hash: None,
            max_bid: None,
            floor: None,
            sellers_allow: Default::default(),
            sellers_block: Default::default(),
            dedupe_days: 0,
            max_in_flight: 10,
            filters: Vec::new(),
            caps: Caps::default(),
            schedule: None,
            bid_metrics: OnceLock::new(),
        }
    }
}

/// Longest a buyer may be given to answer, whatever its file says.
const TIMEOUT_MS_MAX: u64 = 30_000;

impl Buyer {
    pub fn parse(
        file: &Path,
        raw: RawBuyer,
        verticals: &HashMap<String, Arc<Vertical>>,
        sellers: &HashMap<String, Arc<Seller>>,
    ) -> Result<Buyer, ConfigError> {
        let err = |key: &str, problem: String| ConfigError::new(file, key, problem);
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if raw.id != stem {
            return Err(err("id", format!("must equal the file name `{stem}`")));
        }
        if raw.verticals.is_empty() {
            return Err(err("verticals", "must name at least one vertical".into()));
        }
        let mut buyer_verticals = Vec::new();
        for id in &raw.verticals {
            let vertical = verticals
                .get(id)
                .ok_or_else(|| err("verticals", format!("unknown vertical `{id}`")))?;
            buyer_verticals.push(vertical.clone());
        }
        let active = match raw.status.as_str() {
            "active" => true,
            "paused" => false,
            other => return Err(err("status", format!("`{other}` is not active or paused"))),
        };
        let bidding = match (&raw.ping_url, &raw.fixed_price) {
            (Some(url), None) => Bidding::Ping {
                url: parse_url(file, "ping_url", url)?,
            },
            (None, Some(price)) => Bidding::Fixed {
                price: parse_money(file, "fixed_price", price)?,
            },
            _ => {
                return Err(err(
                    "ping_url",
                    "give ping_url or fixed_price, exactly one".into(),
                ))
            }
        };
        if raw.timeout_ms == 0 || raw.timeout_ms > TIMEOUT_MS_MAX {
            return Err(err(
                "timeout_ms",
                format!("must be between 1 and {TIMEOUT_MS_MAX}"),
            ));
        }
        if raw.signing_secret.len() < 16 {
            return Err(err("signing_secret", "needs at least 16 characters".into()));
        }
        if raw.max_in_flight == 0 {
            return Err(err("max_in_flight", "must be at least 1".into()));
        }
        for (key, list) in [
            ("sellers_allow", &raw.sellers_allow),
            ("sellers_block", &raw.sellers_block),
        ] {
            if let Some(unknown) = list.iter().find(|s| !sellers.contains_key(*s)) {
                return Err(err(key, format!("unknown seller `{unknown}`")));
            }
        }
        let mut filters = Vec::new();
        for (field, raw_filter) in &raw.filters {
            filters.extend(parse_filter(file, field, raw_filter, &buyer_verticals)?);
        }
        let max_bid = raw
            .max_bid
            .as_deref()
            .map(|v| parse_money(file, "max_bid", v))
            .transpose()?;
        let floor = raw
            .floor
            .as_deref()
            .map(|v| parse_money(file, "floor", v))
            .transpose()?;
        Ok(Buyer {
            name: raw.name.clone().unwrap_or_else(|| raw.id.clone()),
            id: raw.id,
            verticals: raw.verticals,
            active,
            bidding,
            post_url: parse_url(file, "post_url", &raw.post_url)?,
            timeout_ms: raw.timeout_ms,
            signing_secret: Sensitive::new(raw.signing_secret),
            api_key_hash: parse_key(
                file,
                "",
                raw.api_key.as_deref(),
                raw.api_key_sha256.as_deref(),
            )?,
            max_bid,
            floor,
            sellers_allow: raw.sellers_allow.into_iter().collect(),
            sellers_block: raw.sellers_block.into_iter().collect(),
            dedupe_days: raw.dedupe_days,
            max_in_flight: raw.max_in_flight,
            filters,
            caps: raw
                .caps
                .map(|c| parse_caps(file, c))
                .transpose()?
                .unwrap_or_default(),
            schedule: raw.schedule.map(|s| parse_schedule(file, s)).transpose()?,
            bid_metrics: OnceLock::new(),
        })
    }
}

pub fn parse_timezone(file: &Path, key: &str, name: &str) -> Result<Tz, ConfigError> {
    name.parse::<Tz>()
        .map_err(|_| ConfigError::new(file, key, format!("`{name}` is not an IANA time zone")))
}

fn parse_filter(
    file: &Path,
    field: &str,
    raw: &RawFilter,
    verticals: &[Arc<Vertical>],
) -> Result<Vec<Filter>, ConfigError> {
    let key = |op: &str| format!("filters.{field}.{op}");
    let spec: &FieldSpec = verticals
        .iter()
        .find_map(|v| v.field(field))
        .ok_or_else(|| {
            ConfigError::new(file, key(""), "is not a field of the buyer's verticals")
        })?;
    if spec.pii {
        return Err(ConfigError::new(
            file,
            key(""),
            "filters may not use a PII field: pings never carry it",
        ));
    }
    let value = |op: &str, v: &toml::Value| -> Result<Value, ConfigError> {
        let json =
            serde_json::to_value(v).map_err(|e| ConfigError::new(file, key(op), e.to_string()))?;
        spec.normalise(&json)
            .map_err(|e| ConfigError::new(file, key(op), format!("value {}", e.message)))
    };
    let number = |op: &str, v: &toml::Value| -> Result<Decimal, ConfigError> {
        if !spec.ty.is_numeric() {
            return Err(ConfigError::new(
                file,
                key(op),
                format!("needs a number field, `{field}` is {}", spec.ty.name()),
            ));
        }
        let text = match v {
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::String(s) => s.clone(),
            _ => String::new(),
        };
        text.parse()
            .map_err(|_| ConfigError::new(file, key(op), "must be a number"))
    };
    let mut filters = Vec::new();
    let mut push = |rule| {
        filters.push(Filter {
            field: field.to_string(),
            rule,
        })
    };
    if let Some(list) = &raw.in_ {
        push(FilterRule::In(
            list.iter()
                .map(|v| value("in", v))
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(list) = &raw.not_in {
        push(FilterRule::NotIn(
            list.iter()
                .map(|v| value("not_in", v))
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(prefixes) = &raw.prefix {
        let text_like = matches!(
            spec.ty,
            FieldType::Zip | FieldType::String { .. } | FieldType::UsState
        );
        if !text_like {
            return Err(ConfigError::new(
                file,
                key("prefix"),
                format!("needs a text field, `{field}` is {}", spec.ty.name()),
            ));
        }
        push(FilterRule::Prefix(prefixes.clone()));
    }
    if let Some(min) = &raw.min {
        push(FilterRule::Min(number("min", min)?));
    }
    if let Some(max) = &raw.max {
        push(FilterRule::Max(number("max", max)?));
    }
    if let Some(eq) = &raw.eq {
        push(FilterRule::Eq(value("eq", eq)?));
    }
    if filters.is_empty() {
        return Err(ConfigError::new(
            file,
            key(""),
            "needs one of in, not_in, prefix, min, max, eq",
        ));
    }
    Ok(filters)
}

fn parse_caps(file: &Path, raw: RawCaps) -> Result<Caps, ConfigError> {
    let spend = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| parse_money(file, &format!("caps.{key}"), v))
            .transpose()
    };
    Ok(Caps {
        timezone: raw
            .timezone
            .as_deref()
            .map(|tz| parse_timezone(file, "caps.timezone", tz))
            .transpose()?,
        hourly_count: raw.hourly_count,
        daily_count: raw.daily_count,
        daily_spend: spend("daily_spend", &raw.daily_spend)?,
        weekly_count: raw.weekly_count,
        weekly_spend: spend("weekly_spend", &raw.weekly_spend)?,
        monthly_count: raw.monthly_count,
        monthly_spend: spend("monthly_spend", &raw.monthly_spend)?,
    })
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_schedule(file: &Path, raw: RawSchedule) -> Result<Schedule, ConfigError> {
    let timezone = parse_timezone(file, "schedule.timezone", &raw.timezone)?;
    let mut days = [raw.days.is_none(); 7];
    for day in raw.days.iter().flatten() {
        let index = DAY_NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(day))
            .ok_or_else(|| {
                ConfigError::new(
                    file,
                    "schedule.days",
                    format!("`{day}` is not one of mon … sun"),
                )
            })?;
        days[index] = true;
    }
    let hours = raw.hours.as_deref().unwrap_or("00:00-24:00");
    let bad_hours = || {
        ConfigError::new(
            file,
            "schedule.hours",
            format!("`{hours}` is not HH:MM-HH:MM"),
        )
    };
    let (start, end) = hours.split_once('-').ok_or_else(bad_hours)?;
    let start_minute = parse_clock(start).ok_or_else(bad_hours)?;
    let end_minute = parse_clock(end).ok_or_else(bad_hours)?;
    if start_minute == end_minute || start_minute >= 24 * 60 {
        return Err(bad_hours());
    }
    Ok(Schedule {
        timezone,
        days,
        start_minute,
        end_minute,
    })
}

fn parse_clock(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}
