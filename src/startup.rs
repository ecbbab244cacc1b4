//! Builds the application: storage, shared state, the exchange, and the HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::buyer_client::BuyerClient;
use crate::config::Config;
use crate::exchange::Exchange;
use crate::state::{InProcessState, RedisState, SharedState};
use crate::{routes, store};

pub struct Application {
    port: u16,
    server: Server,
    exchange: Arc<Exchange>,
}

/// How long a stopping server lets in-flight auctions and posts finish.
const SHUTDOWN_TIMEOUT_S: u64 = 30;

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        Application::build_with_listener(config, listener).await
    }

    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let acquire_timeout = std::time::Duration::from_millis(config.db_acquire_timeout_ms);
        let store =
            store::connect_with(&config.database_url, config.db_pool_max, acquire_timeout).await?;
        store.migrate().await.context("applying migrations")?;
        let hash_key = store
            .server_secret()
            .await
            .context("reading the server secret")?;
        let state: Arc<dyn SharedState> = match &config.redis_url {
            Some(url) => Arc::new(
                RedisState::connect(url, &config.redis_key_prefix)
                    .await
                    .context("connecting to Redis")?,
            ),
            None => Arc::new(InProcessState::new()),
        };
        let client = BuyerClient::new().context("building the buyer client")?;
        let exchange = Arc::new(Exchange::new(
            Arc::new(config),
            store,
            state,
            client,
            hash_key,
        ));
        let port = listener.local_addr()?.port();
        reload_on_sighup(exchange.clone());
        compact_rollup_periodically(exchange.clone());
        let data = web::Data::from(exchange.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(SHUTDOWN_TIMEOUT_S)
        .run();
        Ok(Application {
            port,
            server,
            exchange,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn exchange(&self) -> Arc<Exchange> {
        self.exchange.clone()
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// How often the revenue rollup's shards of past hours are folded together.
const ROLLUP_COMPACT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Folds the rollup shards of past hours now and then, so reports read one row per group and
/// hour for all but the current hour. A failure is logged and tried again next time.
fn compact_rollup_periodically(exchange: Arc<Exchange>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(ROLLUP_COMPACT_EVERY);
        loop {
            every.tick().await;
            let before = crate::store::hour_start(exchange.now());
            match exchange.store.compact_revenue_rollup(before).await {
                Ok(rows) => tracing::debug!(rows, "revenue rollup compacted"),
                Err(e) => tracing::warn!(error = %e, "revenue rollup compaction failed"),
            }
        }
    });
}

/// SIGHUP re-reads the buyers directory, like `POST /v1/admin/reload`. The handler is
/// registered before this returns, so a SIGHUP never meets the default action (exit).
fn reload_on_sighup(exchange: Arc<Exchange>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be watched; reload through the admin API");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match exchange.reload() {
                    Ok(buyers) => tracing::info!(buyers, "buyers directory reloaded on SIGHUP"),
                    Err(e) => {
                        tracing::error!(error = %e, "reload on SIGHUP refused; the running configuration stays")
                    }
                }
            }
        });
    }
}
