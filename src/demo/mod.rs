//! Demo buyers: one small server that plays every buyer whose URLs point at this machine.
//!
//! `pingpost demo-buyers` runs it next to `pingpost serve` so the demo marketplace works out
//! of the box. Each buyer's bid and post behaviour is written in the query string of its
//! `ping_url` and `post_url` (see [`behaviour`]); requests must carry the exchange's HMAC
//! signature made with that buyer's `signing_secret`.

pub mod behaviour;
mod handler;
mod routes;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio::task::JoinHandle;

pub use behaviour::{Behaviour, Kind};
pub use handler::{BODY_BYTES_MAX, TIMESTAMP_SKEW_S_MAX};

use crate::config::Config;

/// Worker threads for all demo endpoints together; answers mostly wait on timers.
const WORKERS: usize = 2;
/// How long a graceful stop waits for requests still being answered.
const SHUTDOWN_TIMEOUT_S: u64 = 3;

/// Running demo buyers. Dropping the handle stops them without waiting.
pub struct DemoBuyers {
    /// Bound address by the port the buyer files name (port 0 binds any free port).
    addrs: BTreeMap<u16, SocketAddr>,
    /// Each endpoint's URL with the port actually bound.
    urls: HashMap<(String, Kind), reqwest::Url>,
    server: ServerHandle,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl DemoBuyers {
    /// Every bound address, in the order of the ports the buyer files name.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.addrs.values().copied()
    }

    /// The bound address for a port named in the buyer files.
    pub fn addr(&self, configured_port: u16) -> Option<SocketAddr> {
        self.addrs.get(&configured_port).copied()
    }

    /// Where a buyer's endpoint really listens, query string included.
    pub fn url(&self, buyer_id: &str, kind: Kind) -> Option<&reqwest::Url> {
        self.urls.get(&(buyer_id.to_string(), kind))
    }

    /// Stops accepting, lets answers in progress finish (a few seconds at most), and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.server.stop(true).await;
        if let Some(task) = self.task.take() {
            task.await
                .context("the demo buyer server task failed")?
                .context("the demo buyer server failed")?;
        }
        Ok(())
    }
}

impl Drop for DemoBuyers {
    fn drop(&mut self) {
        if self.task.is_some() {
            // The stop command is sent at once; the returned future only waits for it.
            drop(self.server.stop(false));
        }
    }
}

/// Binds every local buyer endpoint of the configuration and starts answering.
pub async fn spawn(config: &Config) -> anyhow::Result<DemoBuyers> {
    let plan = routes::plan(&config.marketplace.buyers)?;
    if plan.ports.is_empty() {
        anyhow::bail!(
            "no buyer in {} has a ping_url or post_url on http://127.0.0.1 or http://localhost",
            config.buyers_dir.display()
        );
    }
    let mut listeners = Vec::new();
    let mut addrs = BTreeMap::new();
    let mut table = handler::Table::new();
    let mut urls = HashMap::new();
    for (port, paths) in &plan.ports {
        let listener = TcpListener::bind(("127.0.0.1", *port))
            .with_context(|| format!("demo buyers cannot listen on 127.0.0.1:{port}"))?;
        let addr = listener
            .local_addr()
            .context("a bound socket has an address")?;
        for (path, route) in paths {
            table.insert((addr.port(), path.clone()), route.clone());
            let mut url = route.url.clone();
            // Setting the port of an http URL cannot fail.
            let _ = url.set_port(Some(addr.port()));
            urls.insert((route.buyer_id.clone(), route.kind), url);
        }
        addrs.insert(*port, addr);
        listeners.push(listener);
    }
    for id in &plan.not_served {
        tracing::info!(buyer = %id, "buyer has no local URL; not played by the demo buyers");
    }

    let table = web::Data::new(table);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(table.clone())
            .app_data(web::PayloadConfig::new(BODY_BYTES_MAX))
            .default_service(web::to(handler::answer))
    })
    .workers(WORKERS)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_S);
    for listener in listeners {
        server = server
            .listen(listener)
            .context("demo buyers cannot listen")?;
    }
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(DemoBuyers {
        addrs,
        urls,
        server: handle,
        task: Some(task),
    })
}

/// Plays the demo buyers until Ctrl-C or SIGTERM.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let buyers = spawn(config).await?;
    let mut endpoints: Vec<_> = buyers.urls.iter().collect();
    endpoints.sort_by(|a, b| a.0.cmp(b.0));
    for ((buyer, kind), url) in endpoints {
        tracing::info!(buyer = %buyer, kind = kind.name(), port = url.port(), path = url.path(), "demo buyer endpoint");
    }
    let addrs: Vec<String> = buyers.addrs().map(|a| a.to_string()).collect();
    tracing::info!(addrs = %addrs.join(" "), "demo buyers listening");
    shutdown_signal().await?;
    tracing::info!("demo buyers stopping");
    buyers.stop().await
}

async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot listen for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}
