//! pingpost: a ping-post lead exchange.

// Input from sellers, buyers and the database must never panic the server: outside tests no
// `unwrap()`; a panic that cannot happen says why in an `expect`.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auction;
pub mod buyer_client;
pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod exchange;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod reports;
pub mod routes;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
