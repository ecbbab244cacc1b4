//! How a demo buyer behaves, read from the query string of its `ping_url` or `post_url`.
//!
//! The URL is the demo buyer's whole configuration, so buyer files stay plain buyer files:
//! `http://127.0.0.1:9101/summit/ping?bid=9.00-18.00&latency_ms=20-60&no_bid_pct=10`.

use std::fmt;
use std::time::Duration;

use rand::Rng;

use crate::domain::Money;

/// Which endpoint of a buyer a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Ping,
    Post,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Post => "post",
        }
    }

    /// The buyer file key the URL came from, for error messages.
    pub fn url_key(self) -> &'static str {
        match self {
            Kind::Ping => "ping_url",
            Kind::Post => "post_url",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Ping => &["bid", "latency_ms", "no_bid_pct", "error_pct"],
            Kind::Post => &["latency_ms", "reject_pct", "error_pct"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest a demo buyer may be told to wait before answering.
const LATENCY_MS_MAX: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// Bids are drawn uniformly, to the cent, from this inclusive range. Pings only.
    pub bid: Option<(Money, Money)>,
    /// The wait before answering, drawn uniformly from this inclusive range.
    pub latency_ms: (u64, u64),
    /// Share of pings answered 204.
    pub no_bid_pct: u32,
    /// Share of posts answered `{"accepted": false}`.
    pub reject_pct: u32,
    /// Share of requests answered 500.
    pub error_pct: u32,
}

/// A query string key that is unknown, repeated, missing or badly written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BehaviourError {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for BehaviourError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query key `{}`: {}", self.key, self.problem)
    }
}

impl std::error::Error for BehaviourError {}

impl Behaviour {
    /// Reads the behaviour from a URL's query. A ping URL must say what it bids.
    pub fn from_url(url: &reqwest::Url, kind: Kind) -> Result<Behaviour, BehaviourError> {
        let err = |key: &str, problem: &str| BehaviourError {
            key: key.into(),
            problem: problem.into(),
        };
        let mut behaviour = Behaviour {
            bid: None,
            latency_ms: (0, 0),
            no_bid_pct: 0,
            reject_pct: 0,
            error_pct: 0,
        };
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in url.query_pairs() {
            if !kind.keys().contains(&key.as_ref()) {
                let allowed = kind.keys().join(", ");
                return Err(err(&key, &format!("is not one of {allowed}")));
            }
            if seen.iter().any(|k| *k == key) {
                return Err(err(&key, "is given twice"));
            }
            seen.push(key.to_string());
            match key.as_ref() {
                "bid" => {
                    behaviour.bid = Some(parse_price_range(&value).map_err(|p| err("bid", p))?)
                }
                "latency_ms" => {
                    behaviour.latency_ms =
                        parse_latency(&value).map_err(|p| err("latency_ms", p))?
                }
                "no_bid_pct" => {
                    behaviour.no_bid_pct = parse_pct(&value).map_err(|p| err("no_bid_pct", p))?
                }
                "reject_pct" => {
                    behaviour.reject_pct = parse_pct(&value).map_err(|p| err("reject_pct", p))?
                }
                "error_pct" => {
                    behaviour.error_pct = parse_pct(&value).map_err(|p| err("error_pct", p))?
                }
                _ => {}
            }
        }
        if kind == Kind::Ping && behaviour.bid.is_none() {
            return Err(err(
                "bid",
                "a demo ping_url needs bid=<min>-<max> or bid=<price>",
            ));
        }
        Ok(behaviour)
    }

    pub fn draw_latency(&self, rng: &mut impl Rng) -> Duration {
        let (min, max) = self.latency_ms;
        Duration::from_millis(rng.gen_range(min..=max))
    }

    /// A bid in the configured range, or `None` for a post behaviour.
    pub fn draw_bid(&self, rng: &mut impl Rng) -> Option<Money> {
        let (min, max) = self.bid?;
        Some(Money::from_cents(rng.gen_range(min.cents()..=max.cents())))
    }
}

/// True for `pct` out of every 100 draws.
pub fn happens(pct: u32, rng: &mut impl Rng) -> bool {
    rng.gen_range(0..100) < pct
}

fn parse_range<T: PartialOrd + Copy>(
    text: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<(T, T), &'static str> {
    let (min, max) = match text.split_once('-') {
        Some((min, max)) => (parse(min), parse(max)),
        None => (parse(text), parse(text)),
    };
    match (min, max) {
        (Some(min), Some(max)) if min <= max => Ok((min, max)),
        (Some(_), Some(_)) => Err("the range's minimum is above its maximum"),
        _ => Err("must be <value> or <min>-<max>"),
    }
}

fn parse_price_range(text: &str) -> Result<(Money, Money), &'static str> {
    parse_range(text, |t| Money::parse(t).ok())
}

fn parse_latency(text: &str) -> Result<(u64, u64), &'static str> {
    let (min, max) = parse_range(text, |t| t.trim().parse::<u64>().ok())?;
    if max > LATENCY_MS_MAX {
        return Err("must be at most 60000");
    }
    Ok((min, max))
}

fn parse_pct(text: &str) -> Result<u32, &'static str> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or("must be a whole number from 0 to 100")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn behaviour(url: &str, kind: Kind) -> Result<Behaviour, BehaviourError> {
        let url = reqwest::Url::parse(url).expect("test URLs are valid");
        Behaviour::from_url(&url, kind)
    }

    fn money(text: &str) -> Money {
        Money::parse(text).expect("test amounts are valid")
    }

    #[test]
    fn reads_a_ping_behaviour_from_the_query() {
        let b = behaviour(
            "http://127.0.0.1:9101/s/ping?bid=9.00-18.00&latency_ms=20-60&no_bid_pct=10&error_pct=2",
            Kind::Ping,
        );
        assert_eq!(
            b,
            Ok(Behaviour {
                bid: Some((money("9.00"), money("18.00"))),
                latency_ms: (20, 60),
                no_bid_pct: 10,
                reject_pct: 0,
                error_pct: 2,
            })
        );
    }

    #[test]
    fn a_single_value_is_a_fixed_bid_or_latency() {
        let b =
            behaviour("http://localhost:1/p?bid=12.5&latency_ms=30", Kind::Ping).expect("valid");
        assert_eq!(b.bid, Some((money("12.50"), money("12.50"))));
        assert_eq!(b.latency_ms, (30, 30));
    }

    #[test]
    fn reads_a_post_behaviour_and_defaults_to_accepting_at_once() {
        let b = behaviour("http://127.0.0.1:1/post?reject_pct=5", Kind::Post).expect("valid");
        assert_eq!(
            (b.reject_pct, b.error_pct, b.latency_ms, b.bid),
            (5, 0, (0, 0), None)
        );
        let plain = behaviour("http://127.0.0.1:1/post", Kind::Post).expect("valid");
        assert_eq!(plain.reject_pct, 0);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let key = |url: &str, kind| behaviour(url, kind).map_err(|e| e.key);
        assert_eq!(
            key("http://h/p?latency_ms=5", Kind::Ping),
            Err("bid".into())
        );
        assert_eq!(key("http://h/p?bid=5&bid=6", Kind::Ping), Err("bid".into()));
        assert_eq!(key("http://h/p?bid=18-9", Kind::Ping), Err("bid".into()));
        assert_eq!(key("http://h/p?bid=1.005", Kind::Ping), Err("bid".into()));
        assert_eq!(
            key("http://h/p?bid=5&reject_pct=5", Kind::Ping),
            Err("reject_pct".into())
        );
        assert_eq!(key("http://h/p?bid=5", Kind::Post), Err("bid".into()));
        assert_eq!(
            key("http://h/p?no_bid_pct=101&bid=5", Kind::Ping),
            Err("no_bid_pct".into())
        );
        assert_eq!(
            key("http://h/p?latency_ms=70000", Kind::Post),
            Err("latency_ms".into())
        );
        assert_eq!(
            key("http://h/p?colour=red", Kind::Post),
            Err("colour".into())
        );
    }

    #[test]
    fn draws_stay_in_range_and_reach_both_ends() {
        let b = behaviour("http://h/p?bid=9.98-10.00&latency_ms=1-3", Kind::Ping).expect("valid");
        let mut rng = StdRng::seed_from_u64(7);
        let bids: Vec<Money> = (0..200).filter_map(|_| b.draw_bid(&mut rng)).collect();
        assert!(bids
            .iter()
            .all(|p| *p >= money("9.98") && *p <= money("10.00")));
        assert!(bids.contains(&money("9.98")) && bids.contains(&money("10.00")));
        let waits: Vec<u64> = (0..200)
            .map(|_| b.draw_latency(&mut rng).as_millis() as u64)
            .collect();
        assert!(waits.iter().all(|w| (1..=3).contains(w)));
    }

    #[test]
    fn percentages_of_zero_and_a_hundred_are_never_and_always() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!((0..500).all(|_| !happens(0, &mut rng)));
        assert!((0..500).all(|_| happens(100, &mut rng)));
        let some = (0..1000).filter(|_| happens(30, &mut rng)).count();
        assert!((200..400).contains(&some), "30% of 1000 draws gave {some}");
    }
}
