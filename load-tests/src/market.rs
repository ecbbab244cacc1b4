//! A generated marketplace: `exchange.toml` and one buyer file per fleet buyer, in a temp dir.
//!
//! Buyers fall into `groups` by filters on state, homeowner and coverage; a lead drawn for a
//! group is eligible for exactly that group's buyers, so the harness knows whom the exchange
//! will ask and the ceiling asks the same buyers.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use pingpost::buyer_client::Endpoint;
use rand::Rng;
use serde_json::{json, Value};

pub const SELLER_KEY: &str = "load-seller-key-00000001";
pub const SIGNING_SECRET: &str = "load-signing-secret-0001";
pub const VERTICAL: &str = "auto";
pub const FLOOR: &str = "1.00";

const STATES: [&str; 50] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY",
];
/// Most groups: 50 states × homeowner × coverage.
pub const GROUPS_MAX: usize = 200;

#[derive(Debug, Clone)]
pub struct MarketSpec {
    pub buyers: usize,
    /// 1: every buyer takes every lead; up to 200: buyers are split by filters.
    pub groups: usize,
    pub timeout_ms: u64,
    pub tmax_ms: u64,
    pub max_post_attempts: u32,
    /// Give every buyer a (never reached) daily cap, so every offer holds a reservation.
    pub caps: bool,
}

#[derive(Debug, Clone)]
pub struct BuyerSpec {
    pub id: String,
    /// Parsed once, as the exchange parses a buyer's URLs when it loads its configuration.
    pub ping_url: Endpoint,
    pub post_url: Endpoint,
}

pub struct Market {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub spec: MarketSpec,
    pub buyers: Vec<BuyerSpec>,
}

/// One lead of a group: the ping's fields and the full lead.
pub struct LeadPair {
    pub group: usize,
    pub ping: Value,
    pub full: Value,
}

impl Market {
    /// Buyer `i` listens on `addrs[i % addrs.len()]` under its own path.
    pub fn write(spec: MarketSpec, addrs: &[SocketAddr]) -> anyhow::Result<Market> {
        anyhow::ensure!((1..=GROUPS_MAX).contains(&spec.groups), "groups: 1 to 200");
        let dir = tempfile::Builder::new()
            .prefix("pingpost-load-")
            .tempdir()?;
        let buyers_dir = dir.path().join("buyers");
        std::fs::create_dir(&buyers_dir)?;
        let mut buyers = Vec::with_capacity(spec.buyers);
        for i in 0..spec.buyers {
            let addr = addrs[i % addrs.len()];
            let id = format!("b{i:05}");
            let buyer = BuyerSpec {
                ping_url: Endpoint::parse(&format!("http://{addr}/{id}/ping"))
                    .map_err(anyhow::Error::msg)?,
                post_url: Endpoint::parse(&format!("http://{addr}/{id}/post"))
                    .map_err(anyhow::Error::msg)?,
                id,
            };
            let mut text = format!(
                "id = \"{id}\"\nname = \"Load buyer {i}\"\nverticals = [\"{VERTICAL}\"]\n\
                 ping_url = \"{ping}\"\npost_url = \"{post}\"\ntimeout_ms = {timeout}\n\
                 signing_secret = \"{SIGNING_SECRET}\"\nmax_bid = \"500.00\"\nmax_in_flight = 100000\n",
                id = buyer.id,
                ping = buyer.ping_url.as_str(),
                post = buyer.post_url.as_str(),
                timeout = spec.timeout_ms,
            );
            if spec.groups > 1 {
                let (state, homeowner, coverage) = group_fields(i % spec.groups);
                write!(
                    text,
                    "\n[filters]\nstate = {{ in = [\"{state}\"] }}\nhomeowner = {{ eq = {homeowner} }}\n\
                     coverage = {{ in = [\"{coverage}\"] }}\n"
                )?;
            }
            if spec.caps {
                text.push_str("\n[caps]\ndaily_count = 100000000\n");
            }
            std::fs::write(buyers_dir.join(format!("{}.toml", buyer.id)), text)?;
            buyers.push(buyer);
        }
        let config = dir.path().join("exchange.toml");
        std::fs::write(&config, exchange_toml(&spec))?;
        Ok(Market {
            dir,
            config,
            spec,
            buyers,
        })
    }

    /// The buyers a lead of this group is eligible for, in file order.
    pub fn eligible(&self, group: usize) -> impl Iterator<Item = &BuyerSpec> {
        let groups = self.spec.groups;
        self.buyers
            .iter()
            .enumerate()
            .filter(move |(i, _)| i % groups == group)
            .map(|(_, b)| b)
    }

    pub fn lead(&self, rng: &mut impl Rng) -> LeadPair {
        let group = rng.gen_range(0..self.spec.groups);
        let (state, homeowner, coverage) = group_fields(group);
        let zip = format!("{:05}", rng.gen_range(10_000..99_999));
        let age = rng.gen_range(18..90);
        let ping = json!({"zip": zip, "state": state, "age": age, "homeowner": homeowner, "coverage": coverage});
        let mut full = ping.clone();
        let n: u32 = rng.gen();
        let object = full.as_object_mut().expect("an object");
        object.insert("first_name".into(), json!("Ana"));
        object.insert("last_name".into(), json!("Diaz"));
        object.insert("email".into(), json!(format!("ana{n}@example.com")));
        object.insert("phone".into(), json!(format!("305555{:04}", n % 10_000)));
        LeadPair { group, ping, full }
    }
}

fn group_fields(group: usize) -> (&'static str, bool, &'static str) {
    let state = STATES[group / 4];
    let homeowner = (group / 2).is_multiple_of(2);
    let coverage = if group.is_multiple_of(2) {
        "liability"
    } else {
        "full"
    };
    (state, homeowner, coverage)
}

fn exchange_toml(spec: &MarketSpec) -> String {
    format!(
        r#"# Generated by pingpost-load.
listen = "127.0.0.1:0"
database_url = "sqlite://pingpost-load.db"
buyers_dir = "buyers"

[auction]
tmax_ms = {tmax}
offer_ttl_s = 3600
max_post_attempts = {attempts}

[[verticals]]
id = "{VERTICAL}"
floor = "{FLOOR}"
fields = [
  {{ name = "zip",        type = "zip",      required = true }},
  {{ name = "state",      type = "us_state", required = true }},
  {{ name = "age",        type = "integer",  min = 16, max = 100 }},
  {{ name = "homeowner",  type = "boolean" }},
  {{ name = "coverage",   type = "enum", values = ["liability", "full"] }},
  {{ name = "first_name", type = "string", pii = true, required = true }},
  {{ name = "last_name",  type = "string", pii = true, required = true }},
  {{ name = "email",      type = "email",  pii = true, required = true }},
  {{ name = "phone",      type = "phone",  pii = true, required = true }},
]

[[sellers]]
id = "load-seller"
api_key = "{SELLER_KEY}"
payout_share = "0.80"
rate_per_s = 1000000
burst = 1000000
"#,
        tmax = spec.tmax_ms,
        attempts = spec.max_post_attempts,
    )
}
