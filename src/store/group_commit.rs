//! Group commit for the ping log on PostgreSQL (SQLite's writer thread groups its own writes:
//! `sqlite/writer.rs`). Pings that finish at about the same time are written in one
//! database transaction. Each ping's answer still waits for its own commit, so no offer is made
//! for a ping that is not in the books; what changes is that a busy exchange pays for one
//! transaction per batch instead of one per ping. Sales have a writer of their own
//! (`postgres/sales.rs`).

use tokio::sync::{mpsc, oneshot};

use super::{DynStore, NewPing, StoreError, StoreResult};

/// Pings waiting for the writer; a full queue makes the auction wait (back-pressure).
const QUEUE_MAX: usize = 4_096;
/// Most pings in one transaction.
const BATCH_PINGS_MAX: usize = 256;
/// Most bid rows in one transaction (a ping carries up to 1,000).
const BATCH_BIDS_MAX: usize = 20_000;

struct Job {
    ping: NewPing,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The handle the auctions write through; the writer task ends when every handle is gone.
#[derive(Clone)]
pub struct PingWriter {
    jobs: mpsc::Sender<Job>,
}

impl PingWriter {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: DynStore) -> PingWriter {
        let (jobs, queue) = mpsc::channel(QUEUE_MAX);
        tokio::spawn(write_batches(store, queue));
        PingWriter { jobs }
    }

    /// Records the ping with whatever others are waiting, and returns once it is committed.
    pub async fn write(&self, ping: NewPing) -> StoreResult<()> {
        let (done, committed) = oneshot::channel();
        self.jobs
            .send(Job { ping, done })
            .await
            .map_err(|_| stopped())?;
        committed.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable(anyhow::anyhow!("the ping writer has stopped"))
}

async fn write_batches(store: DynStore, mut queue: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut bids = first.ping.bids.len();
        jobs.push(first);
        while jobs.len() < BATCH_PINGS_MAX && bids < BATCH_BIDS_MAX {
            match queue.try_recv() {
                Ok(job) => {
                    bids += job.ping.bids.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let (pings, done): (Vec<NewPing>, Vec<_>) =
            jobs.drain(..).map(|job| (job.ping, job.done)).unzip();
        match store.insert_pings(&pings).await {
            Ok(()) => {
                for sender in done {
                    let _ = sender.send(Ok(()));
                }
            }
            Err(error) if pings.len() == 1 => {
                if let Some(sender) = done.into_iter().next() {
                    let _ = sender.send(Err(error));
                }
            }
            // The database is away: every ping of the batch gets the same answer, at once.
            Err(StoreError::Unavailable(_)) => {
                for sender in done {
                    let _ = sender.send(Err(StoreError::Unavailable(anyhow::anyhow!(
                        "database unavailable"
                    ))));
                }
            }
            // One ping spoilt the batch: each is tried alone and gets its own answer.
            Err(_) => {
                for (ping, sender) in pings.iter().zip(done) {
                    let _ = sender.send(store.insert_ping(ping).await);
                }
            }
        }
    }
}
