//! Cap windows: the hour, day, week (from Monday) and month a sale counts in, in the
//! buyer's own time zone, with the limits that apply to each.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::config::Caps;

/// One window a buyer's caps count in, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapWindow {
    /// Names the window uniquely for its buyer, e.g. `day:2026-11-22`.
    pub key: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub count_max: Option<u32>,
    pub spend_max_cents: Option<i64>,
}

/// The windows that hold `now` for every cap the buyer has. Empty when it has none.
pub fn cap_windows(caps: &Caps, now: DateTime<Utc>) -> Vec<CapWindow> {
    let tz = caps.timezone.unwrap_or(Tz::UTC);
    let local = now.with_timezone(&tz).naive_local();
    let spend = |m: Option<crate::domain::Money>| m.map(|m| m.cents());
    let mut windows = Vec::new();
    let mut add = |kind: &str,
                   start: NaiveDateTime,
                   end: NaiveDateTime,
                   count_max: Option<u32>,
                   spend_max_cents: Option<i64>| {
        if count_max.is_some() || spend_max_cents.is_some() {
            windows.push(CapWindow {
                key: format!("{kind}:{}", start.format("%Y-%m-%dT%H")),
                start: to_utc(tz, start),
                end: to_utc(tz, end),
                count_max,
                spend_max_cents,
            });
        }
    };
    let hour = local
        .date()
        .and_hms_opt(local.hour(), 0, 0)
        .unwrap_or(local);
    add(
        "hour",
        hour,
        hour + Duration::hours(1),
        caps.hourly_count,
        None,
    );
    let day = midnight(local.date());
    add(
        "day",
        day,
        midnight(local.date() + Duration::days(1)),
        caps.daily_count,
        spend(caps.daily_spend),
    );
    let monday = local.date() - Duration::days(local.weekday().num_days_from_monday() as i64);
    add(
        "week",
        midnight(monday),
        midnight(monday + Duration::days(7)),
        caps.weekly_count,
        spend(caps.weekly_spend),
    );
    let first = local.date().with_day(1).unwrap_or(local.date());
    let next_month = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .unwrap_or(first + Duration::days(31));
    add(
        "month",
        midnight(first),
        midnight(next_month),
        caps.monthly_count,
        spend(caps.monthly_spend),
    );
    windows
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).unwrap_or_default()
}

/// A local time to UTC. In a DST gap the first valid instant after it; in an overlap the earlier.
fn to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use chrono_tz::America::New_York;

    fn caps() -> Caps {
        Caps {
            timezone: Some(New_York),
            hourly_count: Some(5),
            daily_count: Some(50),
            daily_spend: Some(Money::parse("500.00").unwrap()),
            weekly_count: None,
            weekly_spend: None,
            monthly_count: None,
            monthly_spend: Some(Money::parse("9000.00").unwrap()),
        }
    }

    #[test]
    fn the_day_starts_at_the_buyers_local_midnight() {
        // 03:30 UTC on the 22nd is 22:30 on the 21st in New York (EST, UTC−5).
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 3, 30, 0).unwrap();
        let windows = cap_windows(&caps(), now);
        let day = windows.iter().find(|w| w.key.starts_with("day:")).unwrap();
        assert_eq!(day.key, "day:2026-11-21T00");
        assert_eq!(
            day.start,
            Utc.with_ymd_and_hms(2026, 11, 21, 5, 0, 0).unwrap()
        );
        assert_eq!(
            day.end,
            Utc.with_ymd_and_hms(2026, 11, 22, 5, 0, 0).unwrap()
        );
        assert_eq!(day.count_max, Some(50));
        assert_eq!(day.spend_max_cents, Some(50_000));
        let hour = windows.iter().find(|w| w.key.starts_with("hour:")).unwrap();
        assert_eq!(hour.key, "hour:2026-11-21T22");
        let month = windows
            .iter()
            .find(|w| w.key.starts_with("month:"))
            .unwrap();
        assert_eq!(
            month.start,
            Utc.with_ymd_and_hms(2026, 11, 1, 4, 0, 0).unwrap()
        );
        assert_eq!(
            month.end,
            Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap()
        );
        assert!(
            windows.iter().all(|w| !w.key.starts_with("week:")),
            "no weekly cap, no window"
        );
    }

    #[test]
    fn weeks_start_on_monday() {
        let caps = Caps {
            weekly_count: Some(10),
            ..Caps::default()
        };
        // Sunday 2026-11-22, UTC: the week began Monday 2026-11-16.
        let windows = cap_windows(&caps, Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap());
        assert_eq!(windows[0].key, "week:2026-11-16T00");
        assert_eq!(windows[0].end - windows[0].start, Duration::days(7));
    }

    #[test]
    fn no_caps_no_windows() {
        assert!(cap_windows(&Caps::default(), Utc::now()).is_empty());
        assert!(Caps::default().is_empty());
        // `is_empty` agrees with the windows: any one limit makes a window.
        let one_limit = Caps {
            monthly_spend: Some(Money::parse("1.00").unwrap()),
            ..Caps::default()
        };
        assert!(!one_limit.is_empty());
        assert_eq!(cap_windows(&one_limit, Utc::now()).len(), 1);
    }
}
