//! The revenue report: sales and returns per day, buyer, seller or vertical, with totals.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::{csv, Format, Period};
use crate::domain::SignedCents;
use crate::store::{RevenueCell, RevenueDimension, RevenueQuery, RevenueSums, Store, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevenueGroup {
    Day,
    Buyer,
    Seller,
    Vertical,
}

impl RevenueGroup {
    pub fn parse(text: &str) -> Option<RevenueGroup> {
        Some(match text {
            "day" => RevenueGroup::Day,
            "buyer" => RevenueGroup::Buyer,
            "seller" => RevenueGroup::Seller,
            "vertical" => RevenueGroup::Vertical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RevenueGroup::Day => "day",
            RevenueGroup::Buyer => "buyer",
            RevenueGroup::Seller => "seller",
            RevenueGroup::Vertical => "vertical",
        }
    }
}

/// One group's metrics as the contract names them; money as two-decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevenueMetrics {
    pub leads_sold: i64,
    pub gross: SignedCents,
    pub payouts: SignedCents,
    pub margin: SignedCents,
    pub returns: i64,
    pub returned_amount: SignedCents,
    pub net_margin: SignedCents,
}

impl From<&RevenueSums> for RevenueMetrics {
    fn from(s: &RevenueSums) -> RevenueMetrics {
        RevenueMetrics {
            leads_sold: s.leads_sold,
            gross: SignedCents(s.gross_cents),
            payouts: SignedCents(s.payouts_cents),
            margin: SignedCents(s.margin_cents),
            returns: s.returns,
            returned_amount: SignedCents(s.returned_cents),
            net_margin: SignedCents(s.margin_cents - s.returned_margin_cents),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevenueRow {
    pub group: String,
    #[serde(flatten)]
    pub metrics: RevenueMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct RevenueReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: String,
    pub group_by: &'static str,
    pub currency: String,
    pub rows: Vec<RevenueRow>,
    pub totals: RevenueMetrics,
}

pub const REVENUE_CSV_HEADER: [&str; 8] = [
    "group",
    "leads_sold",
    "gross",
    "payouts",
    "margin",
    "returns",
    "returned_amount",
    "net_margin",
];

/// Reads the period's revenue from the store and builds the report: the endpoint's and the
/// benchmark's one code path.
pub async fn revenue_report(
    store: &dyn Store,
    currency: &str,
    period: Period,
    group: RevenueGroup,
) -> StoreResult<RevenueReport> {
    let query = match group {
        RevenueGroup::Day => {
            let (bucket_s, source) = period.day_buckets();
            RevenueQuery {
                dimension: RevenueDimension::All,
                start: period.start(),
                end: period.end(),
                bucket_s: Some(bucket_s),
                source,
            }
        }
        other => RevenueQuery {
            dimension: match other {
                RevenueGroup::Buyer => RevenueDimension::Buyer,
                RevenueGroup::Seller => RevenueDimension::Seller,
                _ => RevenueDimension::Vertical,
            },
            start: period.start(),
            end: period.end(),
            bucket_s: None,
            source: period.source_for_totals(),
        },
    };
    let cells = store.revenue(&query).await?;
    Ok(build(currency, period, group, &cells))
}

/// Adds up cells into rows (by local day, or by group id) and the totals; rows sorted by
/// group, only groups with a sale or a return.
pub fn build(
    currency: &str,
    period: Period,
    group: RevenueGroup,
    cells: &[RevenueCell],
) -> RevenueReport {
    let mut groups: BTreeMap<String, RevenueSums> = BTreeMap::new();
    let mut totals = RevenueSums::default();
    for cell in cells {
        let key = match (group, cell.bucket) {
            (RevenueGroup::Day, Some(t)) => period.day_of(t).format("%Y-%m-%d").to_string(),
            _ => cell.group.clone(),
        };
        groups.entry(key).or_default().add(&cell.sums);
        totals.add(&cell.sums);
    }
    let rows = groups
        .into_iter()
        .filter(|(_, s)| s.leads_sold != 0 || s.returns != 0)
        .map(|(group, sums)| RevenueRow {
            group,
            metrics: RevenueMetrics::from(&sums),
        })
        .collect();
    RevenueReport {
        from: period.from,
        to: period.to,
        tz: period.tz.name().to_string(),
        group_by: group.as_str(),
        currency: currency.to_string(),
        rows,
        totals: RevenueMetrics::from(&totals),
    }
}

fn csv_fields(group: &str, m: &RevenueMetrics) -> [String; 8] {
    [
        group.to_string(),
        m.leads_sold.to_string(),
        m.gross.to_wire(),
        m.payouts.to_wire(),
        m.margin.to_wire(),
        m.returns.to_string(),
        m.returned_amount.to_wire(),
        m.net_margin.to_wire(),
    ]
}

impl RevenueReport {
    /// The header, one record per row, then the totals as the group `total`.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        csv::record(&mut out, &REVENUE_CSV_HEADER);
        for row in &self.rows {
            csv::record(&mut out, &csv_fields(&row.group, &row.metrics));
        }
        csv::record(&mut out, &csv_fields("total", &self.totals));
        out
    }

    pub fn render(&self, format: Format) -> Result<String, serde_json::Error> {
        match format {
            Format::Json => serde_json::to_string(self),
            Format::Csv => Ok(self.to_csv()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn sums(sold: i64, gross: i64, payouts: i64, returns: i64, returned: i64) -> RevenueSums {
        RevenueSums {
            leads_sold: sold,
            gross_cents: gross,
            payouts_cents: payouts,
            margin_cents: gross - payouts,
            returns,
            returned_cents: returned,
            returned_margin_cents: returned / 5,
        }
    }

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(text.parse().unwrap())
    }

    fn period(tz: &str) -> Period {
        Period {
            from: "2026-03-01".parse().unwrap(),
            to: "2026-03-02".parse().unwrap(),
            tz: tz.parse().unwrap(),
        }
    }

    #[test]
    fn hours_fold_into_local_days_and_totals_add_up() {
        let cells = [
            RevenueCell {
                bucket: at("2026-03-01T04:00:00Z"),
                group: String::new(),
                sums: sums(1, 1_500, 1_200, 0, 0),
            },
            RevenueCell {
                bucket: at("2026-03-01T05:00:00Z"),
                group: String::new(),
                sums: sums(2, 2_001, 1_600, 1, 1_500),
            },
            RevenueCell {
                bucket: at("2026-03-02T23:00:00Z"),
                group: String::new(),
                sums: sums(1, 999, 799, 0, 0),
            },
        ];
        let report = build("USD", period("America/New_York"), RevenueGroup::Day, &cells);
        let days: Vec<(&str, i64, String, String)> = report
            .rows
            .iter()
            .map(|r| {
                (
                    r.group.as_str(),
                    r.metrics.leads_sold,
                    r.metrics.gross.to_wire(),
                    r.metrics.net_margin.to_wire(),
                )
            })
            .collect();
        // 04:00 UTC is still 28 February in New York; 05:00 is 1 March.
        assert_eq!(
            days,
            [
                ("2026-02-28", 1, "15.00".into(), "3.00".into()),
                ("2026-03-01", 2, "20.01".into(), "1.01".into()),
                ("2026-03-02", 1, "9.99".into(), "2.00".into()),
            ]
        );
        assert_eq!(report.totals.leads_sold, 4);
        assert_eq!(report.totals.gross.to_wire(), "45.00");
        assert_eq!(report.totals.returned_amount.to_wire(), "15.00");
        assert_eq!(report.totals.net_margin.to_wire(), "6.01");
    }

    #[test]
    fn csv_has_the_header_the_rows_and_a_total() {
        let cells = [
            RevenueCell {
                bucket: None,
                group: "b,2".into(),
                sums: sums(1, 1_000, 800, 0, 0),
            },
            RevenueCell {
                bucket: None,
                group: "b1".into(),
                sums: sums(0, 0, 0, 1, 1_000),
            },
        ];
        let report = build("USD", period("UTC"), RevenueGroup::Buyer, &cells);
        assert_eq!(
            report.to_csv(),
            "group,leads_sold,gross,payouts,margin,returns,returned_amount,net_margin\r\n\
             \"b,2\",1,10.00,8.00,2.00,0,0.00,2.00\r\n\
             b1,0,0.00,0.00,0.00,1,10.00,-2.00\r\n\
             total,1,10.00,8.00,2.00,1,10.00,0.00\r\n"
        );
    }
}
