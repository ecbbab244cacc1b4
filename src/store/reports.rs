//! What the finance reports read from the store: revenue cells, ledger pages, auction counts;
//! and the hourly revenue rollup's change for one ledger transaction.

use chrono::{DateTime, Utc};

use super::EntryRow;
use crate::ledger::{Transaction, TransactionKind, EXCHANGE_REVENUE};

/// What revenue is grouped by, besides time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevenueDimension {
    /// Everything in one group (the report by day groups these by time).
    All,
    Buyer,
    Seller,
    Vertical,
}

impl RevenueDimension {
    /// The `dimension` column of the rollup.
    pub fn as_str(self) -> &'static str {
        match self {
            RevenueDimension::All => "all",
            RevenueDimension::Buyer => "buyer",
            RevenueDimension::Seller => "seller",
            RevenueDimension::Vertical => "vertical",
        }
    }
}

/// Where revenue is read from: both give the same numbers for whole UTC hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevenueSource {
    /// `revenue_hourly`: fast; bounds and buckets must be whole UTC hours.
    Rollup,
    /// The ledger entries themselves (with the sale for its vertical): any bounds, any buckets.
    Ledger,
}

/// Seconds in one rollup bucket.
pub const ROLLUP_BUCKET_S: i64 = 3_600;

#[derive(Debug, Clone)]
pub struct RevenueQuery {
    pub dimension: RevenueDimension,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Also group by time in buckets of this many seconds since the Unix epoch; `None`: one
    /// cell per group for the whole range.
    pub bucket_s: Option<i64>,
    pub source: RevenueSource,
}

/// Sums of sales and returns, in cents, with the counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevenueSums {
    pub leads_sold: i64,
    pub gross_cents: i64,
    pub payouts_cents: i64,
    pub margin_cents: i64,
    pub returns: i64,
    pub returned_cents: i64,
    /// The margin the returns gave back.
    pub returned_margin_cents: i64,
}

impl RevenueSums {
    pub fn add(&mut self, other: &RevenueSums) {
        self.leads_sold += other.leads_sold;
        self.gross_cents += other.gross_cents;
        self.payouts_cents += other.payouts_cents;
        self.margin_cents += other.margin_cents;
        self.returns += other.returns;
        self.returned_cents += other.returned_cents;
        self.returned_margin_cents += other.returned_margin_cents;
    }

    /// What one ledger transaction adds: a sale's price, payout and margin, or a return's
    /// refund and reversed margin, read from its entries.
    pub fn of_transaction(t: &Transaction) -> RevenueSums {
        let sum = |pick: &dyn Fn(&str) -> bool| -> i64 {
            t.entries
                .iter()
                .filter(|e| pick(&e.account))
                .map(|e| e.amount_cents)
                .sum()
        };
        let buyer = sum(&|a| a.starts_with("buyer:"));
        let seller = sum(&|a| a.starts_with("seller:"));
        let exchange = sum(&|a| a == EXCHANGE_REVENUE);
        match t.kind {
            TransactionKind::Sale => RevenueSums {
                leads_sold: 1,
                gross_cents: -buyer,
                payouts_cents: seller,
                margin_cents: exchange,
                ..RevenueSums::default()
            },
            TransactionKind::Return => RevenueSums {
                returns: 1,
                returned_cents: buyer,
                returned_margin_cents: -exchange,
                ..RevenueSums::default()
            },
        }
    }
}

/// One group's revenue, in one time bucket when the query asked for buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueCell {
    pub bucket: Option<DateTime<Utc>>,
    /// Buyer, seller or vertical id; empty for `RevenueDimension::All`.
    pub group: String,
    pub sums: RevenueSums,
}

/// The start of the UTC hour that holds `t`: the rollup's bucket.
pub fn hour_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let us = t.timestamp_micros();
    let bucket_us = ROLLUP_BUCKET_S * 1_000_000;
    DateTime::from_timestamp_micros(us - us.rem_euclid(bucket_us)).unwrap_or(t)
}

/// The rollup rows one ledger transaction changes: all, buyer, seller, vertical, in this
/// order, which every writer keeps so that concurrent writers lock rows in the same order.
pub fn rollup_keys<'a>(
    buyer_id: &'a str,
    seller_id: &'a str,
    vertical: &'a str,
) -> [(&'static str, &'a str); 4] {
    [
        ("all", ""),
        ("buyer", buyer_id),
        ("seller", seller_id),
        ("vertical", vertical),
    ]
}

/// A ledger entry with its position, for paging through the ledger in order.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub entry_id: i64,
    pub entry: EntryRow,
}

/// Where the next page of the ledger starts: after this entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCursor {
    pub time: DateTime<Utc>,
    pub entry_id: i64,
}

/// What auction statistics are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuctionDimension {
    Buyer,
    Seller,
    Vertical,
}

/// Counts of one group's auctions. Each store query fills some fields; the report adds up
/// the cells of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuctionCell {
    pub group: String,
    /// Pings: sent by the seller or in the vertical; for a buyer, the pings it was asked to bid on.
    pub pings: i64,
    pub bid_requests: i64,
    /// Priced answers, at or below the floor.
    pub bids: i64,
    pub bid_cents: i64,
    pub below_floor: i64,
    pub no_bids: i64,
    pub bid_timeouts: i64,
    pub bid_errors: i64,
    /// Auctions won (ranked first).
    pub wins: i64,
    pub posts_accepted: i64,
    /// Post requests answered with a rejection, an error or nothing in time.
    pub posts_rejected: i64,
    pub post_timeouts: i64,
    pub post_errors: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use crate::ledger::SaleAmounts;

    #[test]
    fn a_sale_and_its_return_add_up_from_the_entries() {
        let amounts = SaleAmounts::new(Money::from_cents(1_499), rust_decimal::Decimal::new(8, 1));
        let sale = Transaction::sale("lead_1", "b", "s", amounts, Utc::now());
        let sums = RevenueSums::of_transaction(&sale);
        assert_eq!(
            sums,
            RevenueSums {
                leads_sold: 1,
                gross_cents: 1_499,
                payouts_cents: 1_199,
                margin_cents: 300,
                ..RevenueSums::default()
            }
        );
        let back = Transaction::reversal(&sale.id, "lead_1", &sale.entries, Utc::now());
        let returned = RevenueSums::of_transaction(&back);
        assert_eq!(
            returned,
            RevenueSums {
                returns: 1,
                returned_cents: 1_499,
                returned_margin_cents: 300,
                ..RevenueSums::default()
            }
        );
    }

    #[test]
    fn the_bucket_is_the_utc_hour() {
        let t = DateTime::parse_from_rfc3339("2026-03-08T06:59:59.999999Z")
            .unwrap()
            .to_utc();
        assert_eq!(hour_start(t).to_rfc3339(), "2026-03-08T06:00:00+00:00");
        let before_epoch = DateTime::parse_from_rfc3339("1969-12-31T23:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            hour_start(before_epoch).to_rfc3339(),
            "1969-12-31T23:00:00+00:00"
        );
    }
}
