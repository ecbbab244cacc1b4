//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the folders at
//! compile time, and cargo would otherwise not notice a new file in them.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
