//! pingpost: a ping-post lead exchange.

pub mod auction;
pub mod buyer_client;
pub mod config;
pub mod domain;
pub mod ledger;
pub mod store;
pub mod error;
pub mod exchange;
pub mod state;
pub mod routes;
pub mod startup;
pub mod telemetry;
