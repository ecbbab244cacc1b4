//! The auction's rules, with no I/O: who may bid, the floor each bidder faces, who wins.

mod caps;
mod eligibility;
mod ranking;

pub use caps::{cap_windows, CapWindow};
pub use eligibility::{check_eligibility, eligible_buyers, in_schedule, Ineligible, PingContext};
pub use ranking::{effective_floor, rank, Candidate};
