//! The auction's rules, with no I/O: who may bid, the floor each bidder faces, who wins.

mod eligibility;
mod ranking;

pub use eligibility::{check_eligibility, in_schedule, Ineligible, PingContext};
pub use ranking::{effective_floor, rank, Candidate};
