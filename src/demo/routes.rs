//! Which demo endpoints to serve: every buyer URL on 127.0.0.1 or localhost, grouped by port.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};

use super::behaviour::{Behaviour, Kind};
use crate::config::{Bidding, Buyer};
use crate::domain::Sensitive;

/// One endpoint: the buyer it plays, what it answers and the secret requests are signed with.
#[derive(Debug)]
pub struct Route {
    pub buyer_id: String,
    pub kind: Kind,
    pub behaviour: Behaviour,
    pub signing_secret: Sensitive<String>,
    /// The URL as written in the buyer file.
    pub url: reqwest::Url,
}

/// The endpoints to serve, by configured port, then by path.
#[derive(Debug, Default)]
pub struct Plan {
    pub ports: BTreeMap<u16, BTreeMap<String, Arc<Route>>>,
    /// Buyers with no local URL, which some other server plays.
    pub not_served: Vec<String>,
}

/// Hosts a demo buyer URL may name. The server binds 127.0.0.1 for both.
const LOCAL_HOSTS: &[&str] = &["127.0.0.1", "localhost"];

pub fn plan(buyers: &[Arc<Buyer>]) -> anyhow::Result<Plan> {
    let mut plan = Plan::default();
    for buyer in buyers {
        let ping_url = match &buyer.bidding {
            Bidding::Ping { url } => Some(url.as_str()),
            Bidding::Fixed { .. } => None,
        };
        let mut served = false;
        for (kind, text) in [
            (Kind::Ping, ping_url),
            (Kind::Post, Some(buyer.post_url.as_str())),
        ] {
            let Some(text) = text else { continue };
            let context = || format!("buyer `{}`: {}", buyer.id, kind.url_key());
            let url = reqwest::Url::parse(text).with_context(context)?;
            let local = url.host_str().is_some_and(|h| LOCAL_HOSTS.contains(&h));
            if !local || url.scheme() != "http" {
                continue;
            }
            let behaviour = Behaviour::from_url(&url, kind).with_context(context)?;
            let port = url.port_or_known_default().unwrap_or(80);
            let path = url.path().to_string();
            let route = Route {
                buyer_id: buyer.id.clone(),
                kind,
                behaviour,
                signing_secret: buyer.signing_secret.clone(),
                url,
            };
            let paths = plan.ports.entry(port).or_default();
            if let Some(other) = paths.get(&path) {
                bail!(
                    "{}: port {port} path {path} is already the {} endpoint of buyer `{}`",
                    context(),
                    other.kind,
                    other.buyer_id
                );
            }
            paths.insert(path, Arc::new(route));
            served = true;
        }
        if !served {
            plan.not_served.push(buyer.id.clone());
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const EXCHANGE: &str = r#"
        [[verticals]]
        id = "v"
        fields = [{ name = "zip", type = "zip", required = true }]
    "#;

    fn buyers(files: &[(&str, &str)]) -> Vec<Arc<Buyer>> {
        let dir = std::env::temp_dir().join(format!(
            "pingpost-demo-routes-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(dir.join("buyers")).expect("temp dir is writable");
        for (id, urls) in files {
            let text = format!("id = \"{id}\"\nverticals = [\"v\"]\nsigning_secret = \"0123456789abcdef\"\n{urls}\n");
            std::fs::write(dir.join("buyers").join(format!("{id}.toml")), text)
                .expect("temp dir is writable");
        }
        let config = Config::from_str_with_env(&dir.join("exchange.toml"), EXCHANGE, Vec::new());
        std::fs::remove_dir_all(&dir).expect("temp dir is removable");
        config
            .expect("test config is valid")
            .marketplace
            .buyers
            .clone()
    }

    #[test]
    fn groups_local_endpoints_by_port_and_skips_remote_buyers() {
        let plan = plan(&buyers(&[
            ("a", "ping_url = \"http://127.0.0.1:9101/a/ping?bid=5\"\npost_url = \"http://127.0.0.1:9101/a/post\""),
            ("b", "fixed_price = \"3.00\"\npost_url = \"http://localhost:9102/b/post?reject_pct=10\""),
            ("c", "ping_url = \"https://buyer.example/ping\"\npost_url = \"https://buyer.example/post\""),
        ]))
        .expect("a valid plan");
        let ports: Vec<(u16, Vec<&str>)> = plan
            .ports
            .iter()
            .map(|(p, paths)| (*p, paths.keys().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            ports,
            vec![(9101, vec!["/a/ping", "/a/post"]), (9102, vec!["/b/post"])]
        );
        assert_eq!(plan.ports[&9102]["/b/post"].behaviour.reject_pct, 10);
        assert_eq!(plan.not_served, vec!["c".to_string()]);
    }

    #[test]
    fn refuses_two_endpoints_on_one_port_and_path() {
        let error = plan(&buyers(&[
            ("a", "ping_url = \"http://127.0.0.1:9101/x?bid=5\"\npost_url = \"http://127.0.0.1:9101/a/post\""),
            ("b", "ping_url = \"http://localhost:9101/x?bid=6\"\npost_url = \"http://127.0.0.1:9101/b/post\""),
        ]))
        .expect_err("a clash");
        let message = format!("{error:#}");
        assert!(
            message.contains("buyer `b`: ping_url") && message.contains("buyer `a`"),
            "{message}"
        );
    }

    #[test]
    fn names_the_buyer_and_url_of_a_bad_query() {
        let error = plan(&buyers(&[(
            "a",
            "ping_url = \"http://127.0.0.1:9101/a/ping?bid=cheap\"\npost_url = \"http://127.0.0.1:9101/a/post\"",
        )]))
        .expect_err("a bad bid");
        let message = format!("{error:#}");
        assert!(
            message.starts_with("buyer `a`: ping_url: query key `bid`"),
            "{message}"
        );
    }

    /// The repository's `exchange.toml`, without the environment's overrides.
    fn demo_config() -> Config {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("exchange.toml");
        let text = std::fs::read_to_string(&file).expect("exchange.toml is readable");
        Config::from_str_with_env(&file, &text, Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_demo_marketplace_loads_and_serves_every_buyer_with_a_local_url() {
        let config = demo_config();
        let plan = plan(&config.marketplace.buyers).expect("the demo buyers' URLs are valid");
        assert!(
            plan.not_served.is_empty(),
            "not served: {:?}",
            plan.not_served
        );
        assert!(config.marketplace.buyers.len() >= 6);
        assert!(config.marketplace.buyers_for_vertical("home_solar").count() >= 2);
    }

    #[test]
    fn the_readme_ping_always_has_a_fixed_price_buyer_above_every_floor() {
        let config = demo_config();
        let vertical = &config.verticals["auto_insurance"];
        let floor = config
            .sellers
            .values()
            .filter_map(|s| s.floor)
            .chain([vertical.floor])
            .max();
        let takes_florida = |b: &&Arc<Buyer>| {
            b.filters.iter().all(|f| match (&f.field[..], &f.rule) {
                ("state", crate::config::FilterRule::In(states)) => states.contains(&"FL".into()),
                _ => false,
            })
        };
        let uncapped = |b: &&Arc<Buyer>| {
            let c = &b.caps;
            [
                c.hourly_count,
                c.daily_count,
                c.weekly_count,
                c.monthly_count,
            ]
            .iter()
            .all(Option::is_none)
                && [c.daily_spend, c.weekly_spend, c.monthly_spend]
                    .iter()
                    .all(Option::is_none)
        };
        let prices: Vec<_> = config
            .marketplace
            .buyers_for_vertical("auto_insurance")
            .filter(takes_florida)
            .filter(uncapped)
            .filter(|b| {
                b.active
                    && b.schedule.is_none()
                    && b.sellers_allow.is_empty()
                    && b.sellers_block.is_empty()
            })
            .filter_map(|b| match b.bidding {
                Bidding::Fixed { price } => Some(price),
                Bidding::Ping { .. } => None,
            })
            .collect();
        assert!(
            prices.iter().any(|p| Some(*p) >= floor),
            "no unconditional fixed-price buyer: {prices:?}"
        );
    }
}
