//! Integration tests: the real application over HTTP, real buyer servers, a real database.

mod auction;
mod books;
mod caps;
mod config_errors;
mod crash;
mod db;
mod errors;
mod helpers;
mod openapi;
mod operations;
mod outage;
mod posts;
mod report_access;
mod report_books;
mod report_exports;
mod reports;
