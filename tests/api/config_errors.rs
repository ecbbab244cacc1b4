//! A broken configuration stops start-up with one message naming the file and the key.

use std::process::Command;

use crate::helpers::*;

/// Runs the real binary on the config and returns its exit status and stderr.
fn serve(exchange: &str, buyers: &[(String, String)]) -> (bool, String, tempfile::TempDir) {
    let (dir, path) = write_config(exchange, buyers);
    let output = Command::new(env!("CARGO_BIN_EXE_pingpost"))
        .args(["serve", "--config"])
        .arg(&path)
        .env(
            "PINGPOST_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("x.db").display()),
        )
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
        dir,
    )
}

fn buyer(id: &str, extra: &str) -> (String, String) {
    let text = format!(
        "id = \"{id}\"\nverticals = [\"auto_insurance\"]\nfixed_price = \"5.00\"\npost_url = \"http://127.0.0.1:9/post\"\nsigning_secret = \"{SIGNING_SECRET}\"\n{extra}\n"
    );
    (id.to_string(), text)
}

#[test]
fn an_unknown_key_names_the_file_and_the_key() {
    let exchange = exchange_toml("", "tmax_ms = 1000\ntmax_millis = 5");
    let (ok, stderr, _dir) = serve(&exchange, &[buyer("b1", "")]);
    assert!(!ok);
    assert!(stderr.contains("exchange.toml"), "{stderr}");
    assert!(stderr.contains("auction.tmax_millis"), "{stderr}");
    assert!(stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn an_unknown_key_in_a_buyer_file_names_that_file() {
    let (ok, stderr, _dir) = serve(&exchange_toml("", ""), &[buyer("b1", "colour = \"blue\"")]);
    assert!(!ok);
    assert!(
        stderr.contains("b1.toml") && stderr.contains("colour"),
        "{stderr}"
    );
}

#[test]
fn a_bad_value_names_the_file_and_the_key() {
    let (ok, stderr, _dir) = serve(
        &exchange_toml("return_window_days = -3", ""),
        &[buyer("b1", "")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("exchange.toml") && stderr.contains("return_window_days"),
        "{stderr}"
    );

    let (ok, stderr, _dir) = serve(
        &exchange_toml("", ""),
        &[buyer("b2", "max_bid = \"12.345\"")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("b2.toml") && stderr.contains("max_bid") && stderr.contains("decimals"),
        "{stderr}"
    );

    let (ok, stderr, _dir) = serve(
        &exchange_toml("", ""),
        &[buyer("b3", "[schedule]\ntimezone = \"Mars/Olympus\"")],
    );
    assert!(!ok);
    assert!(
        stderr.contains("b3.toml") && stderr.contains("schedule.timezone"),
        "{stderr}"
    );
}

#[test]
fn a_duplicate_id_names_the_file_and_the_key() {
    let exchange = exchange_toml("", "").replace(
        "[[finance_keys]]",
        "[[sellers]]\nid = \"seller-a\"\napi_key = \"another-seller-key-000\"\npayout_share = \"0.5\"\n\n[[finance_keys]]",
    );
    let (ok, stderr, _dir) = serve(&exchange, &[buyer("b1", "")]);
    assert!(!ok);
    assert!(
        stderr.contains("exchange.toml")
            && stderr.contains("key `sellers[")
            && stderr.contains("].id`")
            && stderr.contains("duplicate"),
        "{stderr}"
    );
}

#[test]
fn a_buyer_naming_an_unknown_vertical_fails() {
    let (ok, stderr, _dir) = serve(
        &exchange_toml("", ""),
        &[buyer("b1", "").0.clone()].map(|id| {
            (
                id.clone(),
                buyer(&id, "")
                    .1
                    .replace("[\"auto_insurance\"]", "[\"mortgage\"]"),
            )
        }),
    );
    assert!(!ok);
    assert!(
        stderr.contains("b1.toml") && stderr.contains("verticals") && stderr.contains("mortgage"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_buyers_dir_fails() {
    let exchange =
        exchange_toml("", "").replace("buyers_dir = \"buyers\"", "buyers_dir = \"no-such-dir\"");
    let (ok, stderr, _dir) = serve(&exchange, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("no-such-dir") && stderr.contains("buyers_dir"),
        "{stderr}"
    );
}

#[test]
fn env_overrides_replace_top_level_keys() {
    let (_dir, path) = write_config(&exchange_toml("", ""), &[buyer("b1", "")]);
    let text = std::fs::read_to_string(&path).unwrap();
    let env = [
        ("PINGPOST_LISTEN", "127.0.0.1:9999"),
        ("PINGPOST_RETURN_WINDOW_DAYS", "0"),
        ("PINGPOST_AUCTION", "{ tmax_ms = 300 }"),
        ("PINGPOST_UNRELATED", "ignored"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let config = pingpost::config::Config::from_str_with_env(&path, &text, env).unwrap();
    assert_eq!(config.listen, "127.0.0.1:9999");
    assert_eq!(config.return_window_days, 0);
    assert_eq!(config.auction.tmax_ms, 300);
    assert_eq!(config.database_url, "sqlite://pingpost.db");
}
