//! pingpost: a ping-post lead exchange.

pub mod auction;
pub mod buyer_client;
pub mod config;
pub mod demo;
pub mod domain;
pub mod ledger;
pub mod store;
