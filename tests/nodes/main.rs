//! Several exchange nodes on one PostgreSQL and one Redis. A binary of its own: cargo runs
//! test binaries one after another, so these heavy tests never share the machine with the
//! timing-sensitive ones in `tests/api/`.

#[path = "../api/db.rs"]
#[allow(dead_code)]
mod db;
#[path = "../api/helpers.rs"]
mod helpers;
mod scenarios;
