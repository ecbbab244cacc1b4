//! A timer for the harness that ends sleeps when they are due, not on the next millisecond.
//!
//! tokio's timer wheel has 1 ms ticks and rounds every deadline up to one: a buyer told to
//! answer in a fixed 20 ms took 20–21 ms, and an open-loop flow due at some instant was sent up
//! to 1 ms later (its latency counts from when it was due). Both sides of every run paid that,
//! and at 10 buyers per auction a ping waits for the slowest of ten such sleeps, so the
//! ceiling's own ping p99 sat near 25 ms: buyer latency + 5 ms with nothing in between.
//!
//! One thread keeps the deadlines in a heap and waits on a condition variable with the next
//! one as its timeout (a futex wait, which ends within tens of microseconds of it); a due sleep
//! is woken through a oneshot channel, on whatever runtime awaits it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Sleeps due this close together are ended by one wake of the timer's thread.
const COALESCE: Duration = Duration::from_micros(50);

struct Sleeper {
    due: Instant,
    /// Orders sleepers due at the same instant (a heap needs a total order).
    sequence: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Sleeper {
    fn eq(&self, other: &Sleeper) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}

impl Eq for Sleeper {}

impl PartialOrd for Sleeper {
    fn partial_cmp(&self, other: &Sleeper) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sleeper {
    fn cmp(&self, other: &Sleeper) -> std::cmp::Ordering {
        (self.due, self.sequence).cmp(&(other.due, other.sequence))
    }
}

#[derive(Default)]
struct Sleepers {
    heap: BinaryHeap<Reverse<Sleeper>>,
    sequence: u64,
}

#[derive(Default)]
struct Shared {
    sleepers: Mutex<Sleepers>,
    changed: Condvar,
}

pub struct PreciseTimer {
    shared: Arc<Shared>,
}

impl PreciseTimer {
    /// The process's timer; its thread starts on first use and lives as long as the process.
    pub fn global() -> &'static PreciseTimer {
        static TIMER: OnceLock<PreciseTimer> = OnceLock::new();
        TIMER.get_or_init(PreciseTimer::start)
    }

    fn start() -> PreciseTimer {
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("precise-timer".into())
            .spawn(move || run(&thread_shared))
            .expect("the timer's thread starts");
        PreciseTimer { shared }
    }

    /// Returns at `due` (a few tens of microseconds after it), or at once if it has passed.
    pub async fn sleep_until(&self, due: Instant) {
        if due <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        {
            let mut sleepers = self.shared.sleepers.lock().expect("timer lock");
            sleepers.sequence += 1;
            let sequence = sleepers.sequence;
            let earliest = sleepers.heap.peek().is_none_or(|Reverse(s)| due < s.due);
            sleepers.heap.push(Reverse(Sleeper {
                due,
                sequence,
                wake,
            }));
            // Only a new earliest deadline shortens the thread's wait.
            if earliest {
                self.shared.changed.notify_one();
            }
        }
        let _ = woken.await;
    }

    pub async fn sleep(&self, duration: Duration) {
        self.sleep_until(Instant::now() + duration).await
    }
}

fn run(shared: &Shared) {
    let mut sleepers = shared.sleepers.lock().expect("timer lock");
    loop {
        let now = Instant::now();
        while sleepers
            .heap
            .peek()
            .is_some_and(|Reverse(s)| s.due <= now + COALESCE)
        {
            if let Some(Reverse(sleeper)) = sleepers.heap.pop() {
                // A sleeper that stopped waiting (its flow was dropped) is simply gone.
                let _ = sleeper.wake.send(());
            }
        }
        sleepers = match sleepers.heap.peek() {
            Some(Reverse(next)) => {
                let wait = next.due.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(sleepers, wait)
                    .expect("timer lock")
                    .0
            }
            None => shared.changed.wait(sleepers).expect("timer lock"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleep_ends_after_its_deadline_and_well_within_a_millisecond_of_it() {
        let timer = PreciseTimer::global();
        let mut late = Vec::new();
        for i in 0..50u64 {
            // Deadlines that fall between tokio's millisecond ticks.
            let due = Instant::now() + Duration::from_micros(2_000 + i * 137);
            timer.sleep_until(due).await;
            let woke = Instant::now();
            assert!(woke + COALESCE >= due, "woke {:?} early", due - woke);
            late.push(woke - due);
        }
        late.sort();
        // The median, so that a busy machine's odd late wake cannot fail it, while a timer
        // that rounded to tokio's ticks (0.5 ms late on average) would.
        assert!(
            late[25] < Duration::from_micros(400),
            "median lateness {:?}",
            late[25]
        );
    }

    #[tokio::test]
    async fn sleepers_wake_in_deadline_order_whatever_order_they_came_in() {
        let timer = PreciseTimer::global();
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Far enough apart that a test machine's stall of a few ms cannot reorder them.
        for (i, ms) in [40u64, 10, 25, 2].into_iter().enumerate() {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                timer.sleep_until(start + Duration::from_millis(ms)).await;
                order.lock().unwrap().push(i);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![3, 1, 2, 0]);
        assert!(start.elapsed() >= Duration::from_millis(40));
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_returns_at_once() {
        let before = Instant::now();
        PreciseTimer::global()
            .sleep_until(before - Duration::from_millis(5))
            .await;
        assert!(before.elapsed() < Duration::from_millis(5));
    }
}
