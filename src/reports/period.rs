//! A report's period: inclusive local dates in a time zone, as UTC bounds and day buckets.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::store::{RevenueSource, ROLLUP_BUCKET_S};

/// `from` to `to`, both inclusive, each day from its local midnight in `tz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: Tz,
}

/// Bucket widths tried for a report by day, widest first: every offset a zone has used since
/// 1970 is a whole number of minutes, and nearly all are whole hours.
const BUCKETS_S: [i64; 4] = [ROLLUP_BUCKET_S, 1_800, 900, 60];

/// The first instant of `date` in `tz`. Where a DST change skips local midnight, the day
/// starts when the clocks resume; where midnight happens twice, at the first.
pub fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Gaps are whole minutes and at most a few hours long.
    for minutes in 0..=24 * 60 {
        if let Some(t) = tz
            .from_local_datetime(&(midnight + Duration::minutes(minutes)))
            .earliest()
        {
            return t.with_timezone(&Utc);
        }
    }
    midnight.and_utc()
}

impl Period {
    pub fn start(&self) -> DateTime<Utc> {
        day_start(self.tz, self.from)
    }

    /// Exclusive: the start of the day after `to`.
    pub fn end(&self) -> DateTime<Utc> {
        day_start(self.tz, self.to.succ_opt().unwrap_or(self.to))
    }

    /// The local date of an instant.
    pub fn day_of(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// Where a report over the whole period reads, and whether that is exact: the rollup
    /// when both bounds are whole UTC hours, else the ledger.
    pub fn source_for_totals(&self) -> RevenueSource {
        let aligned = |t: DateTime<Utc>| t.timestamp().rem_euclid(ROLLUP_BUCKET_S) == 0;
        if aligned(self.start()) && aligned(self.end()) {
            RevenueSource::Rollup
        } else {
            RevenueSource::Ledger
        }
    }

    /// The widest time bucket that no local midnight of the period cuts in two, and where a
    /// report by day reads it: the rollup for whole hours, else the ledger.
    pub fn day_buckets(&self) -> (i64, RevenueSource) {
        let mut starts = Vec::new();
        let mut day = self.from;
        while day <= self.to {
            starts.push(day_start(self.tz, day).timestamp());
            day = match day.succ_opt() {
                Some(next) => next,
                None => break,
            };
        }
        starts.push(self.end().timestamp());
        let width = BUCKETS_S
            .into_iter()
            .find(|b| starts.iter().all(|s| s.rem_euclid(*b) == 0))
            .unwrap_or(1);
        let source = if width == ROLLUP_BUCKET_S {
            RevenueSource::Rollup
        } else {
            RevenueSource::Ledger
        };
        (width, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn period(from: &str, to: &str, tz: &str) -> Period {
        Period {
            from: date(from),
            to: date(to),
            tz: tz.parse().unwrap(),
        }
    }

    #[test]
    fn new_york_days_start_at_five_or_four_utc() {
        let p = period("2026-03-07", "2026-03-08", "America/New_York");
        assert_eq!(p.start().to_rfc3339(), "2026-03-07T05:00:00+00:00");
        // DST starts on 2026-03-08: the day after it begins at 04:00 UTC.
        assert_eq!(p.end().to_rfc3339(), "2026-03-09T04:00:00+00:00");
        let two_am_utc = "2026-03-08T02:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(p.day_of(two_am_utc), date("2026-03-07"));
        assert_eq!(p.day_buckets(), (3_600, RevenueSource::Rollup));
        assert_eq!(p.source_for_totals(), RevenueSource::Rollup);
    }

    #[test]
    fn half_hour_zones_read_the_ledger_in_half_hours() {
        let p = period("2026-01-01", "2026-01-31", "Asia/Kolkata");
        assert_eq!(p.start().to_rfc3339(), "2025-12-31T18:30:00+00:00");
        assert_eq!(p.day_buckets(), (1_800, RevenueSource::Ledger));
        assert_eq!(p.source_for_totals(), RevenueSource::Ledger);
        let nepal = period("2026-01-01", "2026-01-02", "Asia/Kathmandu");
        assert_eq!(nepal.day_buckets(), (900, RevenueSource::Ledger));
    }

    #[test]
    fn a_skipped_midnight_starts_the_day_when_clocks_resume() {
        // Santiago moved its clocks from 00:00 to 01:00 on 2023-09-03.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let start = day_start(tz, date("2023-09-03"));
        assert_eq!(start.to_rfc3339(), "2023-09-03T04:00:00+00:00");
        assert_eq!(start.with_timezone(&tz).date_naive(), date("2023-09-03"));
    }

    #[test]
    fn utc_is_the_plain_calendar_day() {
        let p = period("2026-11-22", "2026-11-22", "UTC");
        assert_eq!(p.start().to_rfc3339(), "2026-11-22T00:00:00+00:00");
        assert_eq!(p.end().to_rfc3339(), "2026-11-23T00:00:00+00:00");
        assert_eq!(p.day_buckets(), (3_600, RevenueSource::Rollup));
    }
}
