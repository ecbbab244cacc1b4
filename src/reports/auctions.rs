//! Auction statistics per buyer, seller or vertical: how often buyers are asked, bid, win,
//! and take the leads posted to them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::{csv, Format, Period};
use crate::domain::SignedCents;
use crate::store::{AuctionCell, AuctionDimension, Store, StoreResult};

pub fn parse_dimension(text: &str) -> Option<AuctionDimension> {
    Some(match text {
        "buyer" => AuctionDimension::Buyer,
        "seller" => AuctionDimension::Seller,
        "vertical" => AuctionDimension::Vertical,
        _ => return None,
    })
}

fn dimension_name(d: AuctionDimension) -> &'static str {
    match d {
        AuctionDimension::Buyer => "buyer",
        AuctionDimension::Seller => "seller",
        AuctionDimension::Vertical => "vertical",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuctionRow {
    pub group: String,
    /// For a buyer: the pings it was asked to bid on; else the pings sellers sent.
    pub pings: i64,
    pub bid_requests: i64,
    /// Priced answers, including those below the floor.
    pub bids: i64,
    /// `bids / bid_requests`, to 4 decimals; null with no request.
    pub bid_rate: Option<f64>,
    /// Mean price of the bids, rounded half up to the cent; null with no bid.
    pub average_bid: Option<SignedCents>,
    pub below_floor: i64,
    pub no_bids: i64,
    pub timeouts: i64,
    pub errors: i64,
    pub wins: i64,
    pub posts_accepted: i64,
    pub posts_rejected: i64,
    /// `posts_accepted / (posts_accepted + posts_rejected)`, to 4 decimals.
    pub post_accept_rate: Option<f64>,
    pub post_timeouts: i64,
    pub post_errors: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuctionReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub tz: String,
    pub group_by: &'static str,
    pub rows: Vec<AuctionRow>,
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    if whole == 0 {
        return None;
    }
    let exact = Decimal::from(part) / Decimal::from(whole);
    exact
        .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero)
        .try_into()
        .ok()
}

fn average_cents(total_cents: i64, count: i64) -> Option<SignedCents> {
    if count == 0 {
        return None;
    }
    let mean = (Decimal::from(total_cents) / Decimal::from(count))
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(mean).ok().map(SignedCents)
}

impl AuctionRow {
    fn from_cell(c: &AuctionCell) -> AuctionRow {
        AuctionRow {
            group: c.group.clone(),
            pings: c.pings,
            bid_requests: c.bid_requests,
            bids: c.bids,
            bid_rate: rate(c.bids, c.bid_requests),
            average_bid: average_cents(c.bid_cents, c.bids),
            below_floor: c.below_floor,
            no_bids: c.no_bids,
            timeouts: c.bid_timeouts,
            errors: c.bid_errors,
            wins: c.wins,
            posts_accepted: c.posts_accepted,
            posts_rejected: c.posts_rejected,
            post_accept_rate: rate(c.posts_accepted, c.posts_accepted + c.posts_rejected),
            post_timeouts: c.post_timeouts,
            post_errors: c.post_errors,
        }
    }
}

/// Adds up the store's cells per group: each of its queries gave some of the counts.
pub fn merge(cells: &[AuctionCell]) -> Vec<AuctionRow> {
    let mut groups: BTreeMap<&str, AuctionCell> = BTreeMap::new();
    for c in cells {
        let g = groups.entry(&c.group).or_insert_with(|| AuctionCell {
            group: c.group.clone(),
            ..AuctionCell::default()
        });
        g.pings += c.pings;
        g.bid_requests += c.bid_requests;
        g.bids += c.bids;
        g.bid_cents += c.bid_cents;
        g.below_floor += c.below_floor;
        g.no_bids += c.no_bids;
        g.bid_timeouts += c.bid_timeouts;
        g.bid_errors += c.bid_errors;
        g.wins += c.wins;
        g.posts_accepted += c.posts_accepted;
        g.posts_rejected += c.posts_rejected;
        g.post_timeouts += c.post_timeouts;
        g.post_errors += c.post_errors;
    }
    groups.values().map(AuctionRow::from_cell).collect()
}

pub async fn auction_report(
    store: &dyn Store,
    period: Period,
    dimension: AuctionDimension,
) -> StoreResult<AuctionReport> {
    let cells = store
        .auction_counts(dimension, period.start(), period.end())
        .await?;
    Ok(AuctionReport {
        from: period.from,
        to: period.to,
        tz: period.tz.name().to_string(),
        group_by: dimension_name(dimension),
        rows: merge(&cells),
    })
}

pub const AUCTION_CSV_HEADER: [&str; 16] = [
    "group",
    "pings",
    "bid_requests",
    "bids",
    "bid_rate",
    "average_bid",
    "below_floor",
    "no_bids",
    "timeouts",
    "errors",
    "wins",
    "posts_accepted",
    "posts_rejected",
    "post_accept_rate",
    "post_timeouts",
    "post_errors",
];

impl AuctionReport {
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        csv::record(&mut out, &AUCTION_CSV_HEADER);
        let opt = |r: Option<f64>| r.map(|r| format!("{r:.4}")).unwrap_or_default();
        for r in &self.rows {
            csv::record(
                &mut out,
                &[
                    r.group.clone(),
                    r.pings.to_string(),
                    r.bid_requests.to_string(),
                    r.bids.to_string(),
                    opt(r.bid_rate),
                    r.average_bid.map(|a| a.to_wire()).unwrap_or_default(),
                    r.below_floor.to_string(),
                    r.no_bids.to_string(),
                    r.timeouts.to_string(),
                    r.errors.to_string(),
                    r.wins.to_string(),
                    r.posts_accepted.to_string(),
                    r.posts_rejected.to_string(),
                    opt(r.post_accept_rate),
                    r.post_timeouts.to_string(),
                    r.post_errors.to_string(),
                ],
            );
        }
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

    #[test]
    fn cells_of_one_group_add_up_and_rates_are_rounded() {
        let cells = [
            AuctionCell {
                group: "b1".into(),
                pings: 3,
                bid_requests: 3,
                bids: 2,
                bid_cents: 2_501,
                wins: 1,
                no_bids: 1,
                ..AuctionCell::default()
            },
            AuctionCell {
                group: "b1".into(),
                posts_accepted: 1,
                posts_rejected: 2,
                post_timeouts: 1,
                ..AuctionCell::default()
            },
            AuctionCell {
                group: "a0".into(),
                bid_requests: 1,
                bid_timeouts: 1,
                ..AuctionCell::default()
            },
        ];
        let rows = merge(&cells);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].group, "a0");
        assert_eq!(rows[0].bid_rate, Some(0.0));
        assert_eq!(rows[0].average_bid, None);
        assert_eq!(rows[0].post_accept_rate, None);
        let b1 = &rows[1];
        assert_eq!(b1.bid_rate, Some(0.6667));
        // 25.01 / 2 = 12.505, half up.
        assert_eq!(b1.average_bid.map(|a| a.to_wire()), Some("12.51".into()));
        assert_eq!(b1.post_accept_rate, Some(0.3333));
        assert_eq!((b1.wins, b1.posts_rejected, b1.post_timeouts), (1, 2, 1));
    }
}
