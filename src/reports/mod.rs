//! Finance reports: revenue by day, buyer, seller or vertical; the ledger export; auction
//! statistics. Read-only, from the books; JSON or CSV.

pub mod auctions;
pub mod csv;
pub mod ledger;
pub mod period;
pub mod revenue;

pub use auctions::{auction_report, AuctionReport, AuctionRow};
pub use ledger::ledger_export;
pub use period::Period;
pub use revenue::{revenue_report, RevenueGroup, RevenueMetrics, RevenueReport, RevenueRow};

/// Longest period one report covers, in days.
pub const REPORT_DAYS_MAX: i64 = 366;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8; header=present",
        }
    }
}
