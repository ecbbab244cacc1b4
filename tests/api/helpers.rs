//! Test harness: the real application on port 0 with a config in a temp dir, and real
//! buyer servers on 127.0.0.1 that record what they receive and answer as told.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub use crate::db::TestDb;
use pingpost::config::Config;
use pingpost::startup::Application;

pub const SELLER_A_KEY: &str = "seller-a-key-000000001";
pub const SELLER_B_KEY: &str = "seller-b-key-000000002";
pub const FINANCE_KEY: &str = "finance-key-0000000003";
pub const ADMIN_KEY: &str = "admin-key-000000000004";
pub const SELLER_SLOW_KEY: &str = "seller-slow-key-000005";
pub const SIGNING_SECRET: &str = "test-signing-secret-0001";

/// What a test buyer answers: status, body, and how long it waits first.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(body: Value) -> Reply {
        Reply {
            status: 200,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn bid(price: &str) -> Reply {
        Reply::json(serde_json::json!({"bid": price}))
    }
    pub fn raw(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn no_bid() -> Reply {
        Reply::raw(204, "")
    }
    pub fn accept() -> Reply {
        Reply::json(serde_json::json!({"accepted": true, "buyer_lead_id": "b-1"}))
    }
    pub fn reject() -> Reply {
        Reply::json(serde_json::json!({"accepted": false, "reason": "not_interested"}))
    }
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request a test buyer received.
#[derive(Clone, Debug)]
pub struct Received {
    pub timestamp: String,
    pub signature: String,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl Received {
    /// Checks the signature independently of the exchange's own code.
    pub fn signature_valid(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(self.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.raw);
        self.signature == format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    }
}

#[derive(Default)]
struct BuyerState {
    bid_reply: Option<Reply>,
    post_reply: Option<Reply>,
    bids: Vec<Received>,
    posts: Vec<Received>,
}

/// A buyer's bid and post endpoints, served for real on 127.0.0.1.
#[derive(Clone)]
pub struct TestBuyer {
    pub port: u16,
    state: Arc<Mutex<BuyerState>>,
}

impl TestBuyer {
    pub async fn start(bid: Reply, post: Reply) -> TestBuyer {
        let state = Arc::new(Mutex::new(BuyerState {
            bid_reply: Some(bid),
            post_reply: Some(post),
            ..Default::default()
        }));
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .route("/ping", web::post().to(answer_bid))
                .route("/post", web::post().to(answer_post))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .disable_signals()
        .run();
        tokio::spawn(server);
        TestBuyer { port, state }
    }

    pub fn ping_url(&self) -> String {
        format!("http://127.0.0.1:{}/ping", self.port)
    }
    pub fn post_url(&self) -> String {
        format!("http://127.0.0.1:{}/post", self.port)
    }
    pub fn bids(&self) -> Vec<Received> {
        self.state.lock().unwrap().bids.clone()
    }
    pub fn posts(&self) -> Vec<Received> {
        self.state.lock().unwrap().posts.clone()
    }
    pub fn set_bid(&self, reply: Reply) {
        self.state.lock().unwrap().bid_reply = Some(reply);
    }
    pub fn set_post(&self, reply: Reply) {
        self.state.lock().unwrap().post_reply = Some(reply);
    }
}

fn record(req: &HttpRequest, body: &web::Bytes) -> Received {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    Received {
        timestamp: header("x-pingpost-timestamp"),
        signature: header("x-pingpost-signature"),
        raw: body.to_vec(),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    }
}

async fn respond(reply: Reply) -> HttpResponse {
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).unwrap())
        .content_type(if reply.body.starts_with('<') {
            "text/html"
        } else {
            "application/json"
        })
        .body(reply.body)
}

async fn answer_bid(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<BuyerState>>>,
) -> HttpResponse {
    let reply = {
        let mut s = state.lock().unwrap();
        s.bids.push(record(&req, &body));
        s.bid_reply.clone().unwrap()
    };
    respond(reply).await
}

async fn answer_post(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<BuyerState>>>,
) -> HttpResponse {
    let reply = {
        let mut s = state.lock().unwrap();
        s.posts.push(record(&req, &body));
        s.post_reply.clone().unwrap()
    };
    respond(reply).await
}

/// A buyer file: `extra` is appended as TOML (filters, caps, schedule, overrides).
pub fn pinged_buyer(id: &str, buyer: &TestBuyer, extra: &str) -> (String, String) {
    let text = format!(
        "id = \"{id}\"\nverticals = [\"auto_insurance\"]\nping_url = \"{}\"\npost_url = \"{}\"\nsigning_secret = \"{SIGNING_SECRET}\"\napi_key = \"{id}-buyer-key-0000000\"\nmax_bid = \"200.00\"\n{extra}\n",
        buyer.ping_url(),
        buyer.post_url()
    );
    (id.to_string(), text)
}

pub fn fixed_buyer(id: &str, price: &str, buyer: &TestBuyer, extra: &str) -> (String, String) {
    let text = format!(
        "id = \"{id}\"\nverticals = [\"auto_insurance\"]\nfixed_price = \"{price}\"\npost_url = \"{}\"\nsigning_secret = \"{SIGNING_SECRET}\"\napi_key = \"{id}-buyer-key-0000000\"\n{extra}\n",
        buyer.post_url()
    );
    (id.to_string(), text)
}

pub fn buyer_key(id: &str) -> String {
    format!("{id}-buyer-key-0000000")
}

/// The exchange file the tests run on; `{extra}` lands at the top level.
pub fn exchange_toml(extra_top: &str, auction: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:0"
buyers_dir = "buyers"
currency = "USD"
return_window_days = 7
{extra_top}

[auction]
{auction}

[[verticals]]
id = "auto_insurance"
floor = "1.00"
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
  {{ name = "address",    type = "string", pii = true }},
]

[[sellers]]
id = "seller-a"
api_key = "{SELLER_A_KEY}"
payout_share = "0.80"
rate_per_s = 100000

[[sellers]]
id = "seller-b"
api_key = "{SELLER_B_KEY}"
payout_share = "0.75"
floor = "2.00"
rate_per_s = 100000

[[sellers]]
id = "seller-slow"
api_key = "{SELLER_SLOW_KEY}"
payout_share = "0.50"
rate_per_s = 1
burst = 2

[[finance_keys]]
name = "finance"
api_key = "{FINANCE_KEY}"

[[admin_keys]]
name = "ops"
api_key = "{ADMIN_KEY}"
"#
    )
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub exchange: Arc<pingpost::exchange::Exchange>,
    pub db: TestDb,
    pub dir: tempfile::TempDir,
}

/// Writes the config and buyer files into a fresh temp dir and loads them as `serve` would.
pub fn write_config(exchange: &str, buyers: &[(String, String)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("buyers")).unwrap();
    for (id, text) in buyers {
        std::fs::write(dir.path().join("buyers").join(format!("{id}.toml")), text).unwrap();
    }
    let path = dir.path().join("exchange.toml");
    std::fs::write(&path, exchange).unwrap();
    (dir, path)
}

pub async fn spawn_app(buyers: &[(String, String)]) -> TestApp {
    spawn_app_with(&exchange_toml("", "tmax_ms = 1000"), buyers).await
}

pub async fn spawn_app_with(exchange: &str, buyers: &[(String, String)]) -> TestApp {
    let (dir, path) = write_config(exchange, buyers);
    let db = TestDb::fresh(dir.path()).await;
    let env = vec![("PINGPOST_DATABASE_URL".to_string(), db.url().to_string())];
    let config = Config::from_str_with_env(&path, exchange, env).expect("the test config loads");
    let app = Application::build(config)
        .await
        .expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let exchange = app.exchange();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp {
        address,
        http,
        exchange,
        db,
        dir,
    }
}

impl TestApp {
    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.address))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn ping(&self, key: &str, body: &Value) -> (u16, Value) {
        let response = self.post_json("/v1/pings", key, body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let response = self.post_json(path, key, body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A lead's non-PII part, as a ping carries it.
pub fn ping_lead() -> Value {
    serde_json::json!({"zip": "33101", "state": "FL", "age": 34, "homeowner": true, "coverage": "full"})
}

/// The full lead for the ping above.
pub fn full_lead() -> Value {
    let mut lead = ping_lead();
    let pii = serde_json::json!({"first_name": "Ana", "last_name": "Diaz", "email": "ana@example.com", "phone": "(305) 555-0100", "address": "1 Ocean Dr"});
    lead.as_object_mut()
        .unwrap()
        .extend(pii.as_object().unwrap().clone());
    lead
}

pub fn ping_body() -> Value {
    serde_json::json!({"vertical": "auto_insurance", "lead": ping_lead()})
}

/// Every ledger entry as (transaction id, account, signed cents), in insertion order.
pub async fn ledger_entries(app: &TestApp) -> Vec<(String, String, i64)> {
    app.db.ledger_entries().await
}

/// Every value in the database as text.
pub async fn database_dump(app: &TestApp) -> String {
    app.db.dump().await
}

/// A second exchange node on the same database (and the same config) as `first`.
pub async fn spawn_app_on(first: &TestApp, buyers: &[(String, String)]) -> TestApp {
    let exchange = exchange_toml("", "tmax_ms = 1000");
    let (dir, path) = write_config(&exchange, buyers);
    let env = vec![(
        "PINGPOST_DATABASE_URL".to_string(),
        first.db.url().to_string(),
    )];
    let config = Config::from_str_with_env(&path, &exchange, env).expect("the test config loads");
    let app = Application::build(config)
        .await
        .expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let exchange = app.exchange();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let db = first.db.borrow();
    TestApp {
        address,
        http,
        exchange,
        db,
        dir,
    }
}

/// The real `pingpost serve` binary on a free port, its log in a file beside its config.
pub struct RealServer {
    pub child: std::process::Child,
    pub address: String,
    pub log_path: PathBuf,
}

impl RealServer {
    /// `log_level` is the server's `RUST_LOG`.
    pub async fn start(
        config: &std::path::Path,
        database_url: &str,
        args: &[&str],
        log_level: &str,
    ) -> RealServer {
        RealServer::start_with_env(config, database_url, args, log_level, &[]).await
    }

    /// As `start`, with more environment (e.g. `PINGPOST_REDIS_URL`).
    pub async fn start_with_env(
        config: &std::path::Path,
        database_url: &str,
        args: &[&str],
        log_level: &str,
        env: &[(&str, String)],
    ) -> RealServer {
        // A free port can be taken by a parallel test before the server binds it: try another.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log_path = config.with_file_name(format!("server-{port}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pingpost"))
                .args(["serve", "--config"])
                .arg(config)
                .args(args)
                .env("PINGPOST_DATABASE_URL", database_url)
                .env("PINGPOST_LISTEN", format!("127.0.0.1:{port}"))
                .env("RUST_LOG", log_level)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("the server starts");
            let address = format!("http://127.0.0.1:{port}");
            let http = reqwest::Client::new();
            for _ in 0..600 {
                if http
                    .get(format!("{address}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return RealServer {
                        child,
                        address,
                        log_path,
                    };
                }
                if child.try_wait().is_ok_and(|status| status.is_some()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let exited = child.try_wait();
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if !log.contains("Address already in use") {
                panic!("the server on port {port} did not come up ({exited:?}): {log}");
            }
        }
        panic!("no free port could be bound in five tries");
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// A test that fails mid-way still stops its servers.
impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ping and post until the server goes away; returns the lead ids reported sold.
pub async fn post_stream(address: String, sold: Arc<Mutex<Vec<String>>>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..10_000 {
        let mut lead = full_lead();
        lead["email"] = json!(format!("person{i}-{}@example.com", rand_suffix()));
        let ping = http
            .post(format!("{address}/v1/pings"))
            .bearer_auth(SELLER_A_KEY)
            .json(&ping_body())
            .send()
            .await;
        let Ok(ping) = ping else { return };
        let Ok(ping) = ping.json::<Value>().await else {
            return;
        };
        let body = json!({"ping_id": ping["ping_id"], "lead": lead});
        let Ok(response) = http
            .post(format!("{address}/v1/posts"))
            .bearer_auth(SELLER_A_KEY)
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        let Ok(result) = response.json::<Value>().await else {
            return;
        };
        if result["status"] == "sold" {
            sold.lock()
                .unwrap()
                .push(result["lead_id"].as_str().unwrap().to_string());
        }
    }
}

pub fn rand_suffix() -> u64 {
    rand::random::<u64>()
}

/// A ping on one node and, if it got an offer, the post on another (or the same).
pub async fn flow_across(
    http: &reqwest::Client,
    ping_node: &str,
    post_node: &str,
    key: &str,
) -> (u16, Value) {
    let r = http
        .post(format!("{ping_node}/v1/pings"))
        .bearer_auth(key)
        .json(&ping_body())
        .send()
        .await
        .unwrap();
    let (status, ping) = (
        r.status().as_u16(),
        r.json::<Value>().await.unwrap_or(Value::Null),
    );
    if status != 200 || ping["status"] != "offer" {
        return (status, ping);
    }
    let body = json!({"ping_id": ping["ping_id"], "lead": full_lead()});
    let r = http
        .post(format!("{post_node}/v1/posts"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        r.status().as_u16(),
        r.json::<Value>().await.unwrap_or(Value::Null),
    )
}
