//! Integration tests: the real application over HTTP, real buyer servers, a real database.

mod auction;
mod config_errors;
mod errors;
mod helpers;
