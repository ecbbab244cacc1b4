//! Many reservations at once against one cap, from two nodes: exactly as many succeed as the
//! cap allows, never one more (the check and the reservation are one atomic step).

use chrono::Duration;
use pingpost::auction::CapWindow;

use crate::{day, now, reservation, Backend};

const FLOWS: usize = 200;

/// Runs `FLOWS` concurrent reservations of `price_cents` each, alternating between two nodes,
/// and returns how many were granted.
async fn race(backend: &Backend, window: CapWindow, price_cents: i64) -> usize {
    let nodes = [backend.state(), backend.another_node().await];
    nodes[0].seed("b", &window, 0, 0).await.unwrap();
    let (now, later) = (now(), now() + Duration::minutes(2));
    let tasks: Vec<_> = (0..FLOWS)
        .map(|i| {
            let node = nodes[i % 2].clone();
            let r = reservation(
                &format!("ping_{i}:b"),
                "b",
                std::slice::from_ref(&window),
                price_cents,
                later,
            );
            tokio::spawn(async move { node.reserve(&r, now).await })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if task.await.expect("the task ran").expect("reserve answered") {
            granted += 1;
        }
    }
    assert_eq!(
        nodes[1]
            .caps_room(&[("b", std::slice::from_ref(&window))], now)
            .await
            .unwrap(),
        [false],
        "the cap is reached"
    );
    granted
}

async fn concurrent_reservations_never_pass_a_count_cap(backend: &Backend) {
    let granted = race(backend, day("day:a", Some(5), None), 1000).await;
    assert_eq!(granted, 5);
}

async fn concurrent_reservations_never_pass_a_spend_cap(backend: &Backend) {
    let granted = race(backend, day("day:a", None, Some(3 * 1234)), 1234).await;
    assert_eq!(granted, 3, "a spend cap worth exactly three leads");
}

crate::conformance!(
    concurrent_reservations_never_pass_a_count_cap,
    concurrent_reservations_never_pass_a_spend_cap,
);
