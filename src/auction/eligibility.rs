//! Eligibility: which buyers may be asked to bid on a ping. A buyer that fails is never contacted.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::config::{Buyer, Filter, FilterRule, Marketplace, Schedule, Seller};

pub struct PingContext<'a> {
    pub vertical: &'a str,
    pub seller: &'a Seller,
    pub lead: &'a BTreeMap<String, Value>,
    pub now: DateTime<Utc>,
}

/// Why a buyer was left out of an auction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    Paused,
    Vertical,
    SellerNotAllowed,
    Filter(String),
    Schedule,
}

/// The buyers of the marketplace that may be asked to bid on this ping, in file order, at
/// most `max` of them. Caps are checked afterwards, against the shared state.
pub fn eligible_buyers(
    market: &Marketplace,
    is_paused: impl Fn(&str) -> bool,
    ctx: &PingContext<'_>,
    max: usize,
) -> Vec<Arc<Buyer>> {
    market
        .candidates(ctx.vertical, ctx.lead)
        .filter(|b| check_eligibility(b, is_paused(&b.id), ctx).is_ok())
        .take(max)
        .cloned()
        .collect()
}

pub fn check_eligibility(
    buyer: &Buyer,
    paused: bool,
    ctx: &PingContext<'_>,
) -> Result<(), Ineligible> {
    if !buyer.active || paused {
        return Err(Ineligible::Paused);
    }
    if !buyer.verticals.iter().any(|v| v == ctx.vertical) {
        return Err(Ineligible::Vertical);
    }
    let seller = ctx.seller.id.as_str();
    if buyer.sellers_block.contains(seller)
        || (!buyer.sellers_allow.is_empty() && !buyer.sellers_allow.contains(seller))
    {
        return Err(Ineligible::SellerNotAllowed);
    }
    if let Some(failed) = buyer.filters.iter().find(|f| !filter_holds(f, ctx.lead)) {
        return Err(Ineligible::Filter(failed.field.clone()));
    }
    if let Some(schedule) = &buyer.schedule {
        if !in_schedule(schedule, ctx.now) {
            return Err(Ineligible::Schedule);
        }
    }
    Ok(())
}

/// A missing field fails every filter on it.
fn filter_holds(filter: &Filter, lead: &BTreeMap<String, Value>) -> bool {
    let Some(value) = lead.get(&filter.field) else {
        return false;
    };
    match &filter.rule {
        FilterRule::In(values) => values.contains(value),
        FilterRule::NotIn(values) => !values.contains(value),
        FilterRule::Eq(expected) => value == expected,
        FilterRule::Prefix(prefixes) => value
            .as_str()
            .is_some_and(|text| prefixes.iter().any(|p| text.starts_with(p.as_str()))),
        FilterRule::Min(min) => as_decimal(value).is_some_and(|n| n >= *min),
        FilterRule::Max(max) => as_decimal(value).is_some_and(|n| n <= *max),
    }
}

fn as_decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => n.as_i64().map(Decimal::from),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Days and hours in the buyer's own time zone. A window that wraps midnight
/// ("20:00-02:00") belongs to the day it starts on: Friday's night shift runs into Saturday.
pub fn in_schedule(schedule: &Schedule, now: DateTime<Utc>) -> bool {
    let local = now.with_timezone(&schedule.timezone);
    let today = local.weekday().num_days_from_monday() as usize;
    let yesterday = (today + 6) % 7;
    let minute = local.hour() * 60 + local.minute();
    let (start, end) = (schedule.start_minute, schedule.end_minute);
    if start < end {
        schedule.days[today] && minute >= start && minute < end
    } else {
        (schedule.days[today] && minute >= start) || (schedule.days[yesterday] && minute < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::America::New_York;
    use proptest::prelude::*;
    use serde_json::json;
    use std::path::Path;

    use crate::config::Filter;

    fn buyer(i: usize, vertical: &str, filters: Vec<Filter>) -> Buyer {
        Buyer {
            verticals: vec![vertical.to_string()],
            filters,
            ..Buyer::for_tests(&format!("b{i:03}"), "http://127.0.0.1:9")
        }
    }

    /// State values of leads and filters: strings, and values of other JSON types that must
    /// not be confused with them (the integer 1, the float 1.0, true), and two floats that are
    /// equal but print differently (0.0 and -0.0).
    fn state(i: u8) -> Value {
        let values = [
            json!("FL"),
            json!("GA"),
            json!("TX"),
            json!(1),
            json!(1.0),
            json!(true),
            json!(0.0),
            json!(-0.0),
        ];
        values[i as usize % values.len()].clone()
    }

    fn filter(kind: u8, values: &[u8]) -> Option<Filter> {
        let values: Vec<Value> = values.iter().map(|&v| state(v)).collect();
        let (field, rule) = match kind % 6 {
            0 => return None,
            1 => ("state", FilterRule::In(values)),
            2 => ("state", FilterRule::Eq(values.first()?.clone())),
            3 => ("state", FilterRule::NotIn(values)),
            4 => ("homeowner", FilterRule::Eq(json!(true))),
            _ => ("zip", FilterRule::Prefix(vec!["33".into()])),
        };
        Some(Filter {
            field: field.into(),
            rule,
        })
    }

    proptest! {
        /// The marketplace's index never drops a buyer whose filters hold, and keeps file order:
        /// eligibility through it is eligibility over every buyer of the vertical.
        #[test]
        fn the_index_finds_exactly_the_buyers_a_full_scan_finds(
            specs in proptest::collection::vec(
                (proptest::collection::vec((0u8..6, proptest::collection::vec(0u8..8, 0..4)), 0..3), 0u8..4),
                0..40,
            ),
            leads in proptest::collection::vec((proptest::option::of(0u8..8), any::<bool>(), any::<bool>()), 1..12),
        ) {
            let buyers: Vec<Buyer> = specs
                .iter()
                .enumerate()
                .map(|(i, (filters, vertical))| {
                    let filters = filters.iter().filter_map(|(k, v)| filter(*k, v)).collect();
                    buyer(i, if *vertical == 0 { "solar" } else { "auto" }, filters)
                })
                .collect();
            let market = Marketplace::from_buyers(Path::new("buyers"), buyers, &Default::default())
                .expect("distinct ids");
            for (state_value, homeowner, zip) in leads {
                let mut lead = BTreeMap::new();
                if let Some(v) = state_value {
                    lead.insert("state".to_string(), state(v));
                }
                lead.insert("homeowner".to_string(), json!(homeowner));
                lead.insert("zip".to_string(), json!(if zip { "33101" } else { "10001" }));
                for vertical in ["auto", "solar", "none"] {
                    let holds = |b: &&Arc<Buyer>| b.filters.iter().all(|f| filter_holds(f, &lead));
                    let indexed: Vec<&str> =
                        market.candidates(vertical, &lead).filter(holds).map(|b| b.id.as_str()).collect();
                    let scanned: Vec<&str> =
                        market.buyers_for_vertical(vertical).filter(holds).map(|b| b.id.as_str()).collect();
                    prop_assert_eq!(indexed, scanned);
                }
            }
        }
    }

    fn schedule(days: [bool; 7], start: u32, end: u32) -> Schedule {
        Schedule {
            timezone: New_York,
            days,
            start_minute: start,
            end_minute: end,
        }
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        New_York
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    const WEEKDAYS: [bool; 7] = [true, true, true, true, true, false, false];

    #[test]
    fn business_hours_in_the_buyers_zone() {
        let s = schedule(WEEKDAYS, 8 * 60, 20 * 60);
        // 2026-11-20 is a Friday.
        assert!(in_schedule(&s, at(2026, 11, 20, 8, 0)));
        assert!(in_schedule(&s, at(2026, 11, 20, 19, 59)));
        assert!(!in_schedule(&s, at(2026, 11, 20, 20, 0)));
        assert!(!in_schedule(&s, at(2026, 11, 20, 7, 59)));
        assert!(!in_schedule(&s, at(2026, 11, 21, 12, 0)));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_its_start_day() {
        let s = schedule(WEEKDAYS, 20 * 60, 2 * 60);
        assert!(in_schedule(&s, at(2026, 11, 20, 23, 0))); // Friday night
        assert!(in_schedule(&s, at(2026, 11, 21, 1, 59))); // early Saturday, Friday's shift
        assert!(!in_schedule(&s, at(2026, 11, 21, 23, 0))); // Saturday night: no shift
        assert!(!in_schedule(&s, at(2026, 11, 23, 1, 0))); // early Monday: Sunday had none
    }
}
