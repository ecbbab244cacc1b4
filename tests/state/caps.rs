//! Caps and reservations: count and spend caps, idempotent reservations, release, commit,
//! expiry by the caller's clock, seeding, and the batch room check.

use chrono::Duration;

use crate::{day, now, reservation, Backend};

async fn reserved_plus_committed_never_passes_a_count_cap(backend: &Backend) {
    let state = backend.state();
    let w = [day("day:a", Some(2), None)];
    let (now, later) = (now(), now() + Duration::minutes(2));
    state.seed("b", &w[0], 1, 0).await.unwrap();
    assert!(state
        .reserve(&reservation("r1", "b", &w, 100, later), now)
        .await
        .unwrap());
    assert!(
        !state
            .reserve(&reservation("r2", "b", &w, 100, later), now)
            .await
            .unwrap(),
        "1 committed + 1 reserved = the cap"
    );
    assert_eq!(state.caps_room(&[("b", &w)], now).await.unwrap(), [false]);
    state.release("r1").await.unwrap();
    assert_eq!(state.caps_room(&[("b", &w)], now).await.unwrap(), [true]);
    assert!(state
        .reserve(&reservation("r2", "b", &w, 100, later), now)
        .await
        .unwrap());
}

async fn a_spend_cap_admits_a_sale_only_if_it_fits(backend: &Backend) {
    let state = backend.state();
    let w = [day("day:a", None, Some(3000))];
    let (now, later) = (now(), now() + Duration::minutes(2));
    state.seed("b", &w[0], 0, 0).await.unwrap();
    let r1 = reservation("r1", "b", &w, 1000, later);
    assert!(state.reserve(&r1, now).await.unwrap());
    state.commit(&r1).await.unwrap();
    assert!(state
        .reserve(&reservation("r2", "b", &w, 1500, later), now)
        .await
        .unwrap());
    assert!(
        !state
            .reserve(&reservation("r3", "b", &w, 501, later), now)
            .await
            .unwrap(),
        "2500 + 501 > 3000"
    );
    assert_eq!(
        state.caps_room(&[("b", &w)], now).await.unwrap(),
        [true],
        "2500 < 3000: room for a cheap lead"
    );
    assert!(
        state
            .reserve(&reservation("r3", "b", &w, 500, later), now)
            .await
            .unwrap(),
        "2500 + 500 = 3000 is allowed"
    );
    assert_eq!(state.caps_room(&[("b", &w)], now).await.unwrap(), [false]);
}

async fn a_reservation_is_held_once_whatever_the_retries(backend: &Backend) {
    let state = backend.state();
    let w = [day("day:a", Some(2), None)];
    let (now, later) = (now(), now() + Duration::minutes(2));
    state.seed("b", &w[0], 0, 0).await.unwrap();
    for _ in 0..3 {
        assert!(state
            .reserve(&reservation("r1", "b", &w, 100, later), now)
            .await
            .unwrap());
    }
    assert!(
        state
            .reserve(&reservation("r2", "b", &w, 100, later), now)
            .await
            .unwrap(),
        "r1 counted once"
    );
    assert!(
        state
            .reserve(&reservation("r1", "b", &w, 100, later), now)
            .await
            .unwrap(),
        "a held reservation is still held at the cap"
    );
    assert!(!state
        .reserve(&reservation("r3", "b", &w, 100, later), now)
        .await
        .unwrap());
}

async fn releasing_gives_the_room_back_once(backend: &Backend) {
    let state = backend.state();
    let w = [day("day:a", Some(2), None)];
    let (now, later) = (now(), now() + Duration::minutes(2));
    state.seed("b", &w[0], 0, 0).await.unwrap();
    for id in ["r1", "r2"] {
        assert!(state
            .reserve(&reservation(id, "b", &w, 100, later), now)
            .await
            .unwrap());
    }
    state.release("r1").await.unwrap();
    state.release("r1").await.unwrap();
    state.release("never-held").await.unwrap();
    assert!(state
        .reserve(&reservation("r3", "b", &w, 100, later), now)
        .await
        .unwrap());
    assert!(
        !state
            .reserve(&reservation("r4", "b", &w, 100, later), now)
            .await
            .unwrap(),
        "a second release of r1 gave nothing more back"
    );
}

async fn a_commit_turns_the_reservation_into_committed_spend(backend: &Backend) {
    let state = backend.state();
    let w = [day("day:a", Some(3), None)];
    let now = now();
    let soon = now + Duration::minutes(2);
    state.seed("b", &w[0], 0, 0).await.unwrap();
    let r1 = reservation("r1", "b", &w, 100, soon);
    assert!(state.reserve(&r1, now).await.unwrap());
    state.commit(&r1).await.unwrap();
    // A sale whose reservation lapsed still counts.
    state
        .commit(&reservation("r2", "b", &w, 100, soon))
        .await
        .unwrap();
    let long_after = now + Duration::minutes(30);
    assert!(state
        .reserve(
            &reservation("r3", "b", &w, 100, long_after + Duration::minutes(2)),
            long_after
        )
        .await
        .unwrap());
    assert!(
        !state
            .reserve(
                &reservation("r4", "b", &w, 100, long_after + Duration::minutes(2)),
                long_after
            )
            .await
            .unwrap(),
        "2 committed (which never expire) + 1 reserved = the cap"
    );
}

async fn an_expired_reservation_gives_its_room_back(backend: &Backend) {
    let state = backend.state();
    let w = [day("day:a", Some(1), Some(10_000))];
    let now = now();
    let expires = now + Duration::seconds(120);
    state.seed("b", &w[0], 0, 0).await.unwrap();
    assert!(state
        .reserve(&reservation("r1", "b", &w, 9_000, expires), now)
        .await
        .unwrap());
    let just_before = expires - Duration::milliseconds(1);
    assert_eq!(
        state.caps_room(&[("b", &w)], just_before).await.unwrap(),
        [false]
    );
    assert_eq!(
        state.caps_room(&[("b", &w)], expires).await.unwrap(),
        [true],
        "an offer is over at its expiry (the caller's clock, not the wall's)"
    );
    assert!(state
        .reserve(
            &reservation("r2", "b", &w, 9_000, expires + Duration::minutes(2)),
            expires
        )
        .await
        .unwrap());
    state.release("r1").await.unwrap();
    assert!(
        !state
            .reserve(
                &reservation("r3", "b", &w, 100, expires + Duration::minutes(2)),
                expires
            )
            .await
            .unwrap(),
        "releasing the lapsed r1 gave nothing back twice"
    );
}

async fn seeding_never_overwrites_known_totals(backend: &Backend) {
    let state = backend.state();
    let w = [day("day:a", Some(5), None)];
    let (now, later) = (now(), now() + Duration::minutes(1));
    state.seed("b", &w[0], 3, 0).await.unwrap();
    state.seed("b", &w[0], 0, 0).await.unwrap();
    for id in ["r1", "r2"] {
        assert!(state
            .reserve(&reservation(id, "b", &w, 1, later), now)
            .await
            .unwrap());
    }
    assert!(
        !state
            .reserve(&reservation("r3", "b", &w, 1, later), now)
            .await
            .unwrap(),
        "3 seeded + 2 reserved = 5"
    );
    state.seed("b", &w[0], 0, 0).await.unwrap();
    assert_eq!(
        state.caps_room(&[("b", &w)], now).await.unwrap(),
        [false],
        "nor do they drop reservations"
    );
}

async fn unseeded_lists_the_windows_without_totals(backend: &Backend) {
    let state = backend.state();
    let windows = [
        day("day:a", Some(5), None),
        day("week:a", None, Some(100)),
        day("month:a", Some(50), None),
    ];
    assert_eq!(state.unseeded("b", &windows).await.unwrap(), windows);
    state.seed("b", &windows[1], 0, 0).await.unwrap();
    assert_eq!(
        state.unseeded("b", &windows).await.unwrap(),
        [windows[0].clone(), windows[2].clone()]
    );
    assert_eq!(
        state.unseeded("other", &windows).await.unwrap(),
        windows,
        "totals are per buyer"
    );
    assert!(state.unseeded("b", &[]).await.unwrap().is_empty());
}

async fn caps_room_answers_for_many_buyers_at_once(backend: &Backend) {
    let state = backend.state();
    let (now, later) = (now(), now() + Duration::minutes(2));
    let one = [day("day:a", Some(1), None)];
    let roomy = [day("day:a", Some(10), Some(100_000))];
    let two = [day("day:a", Some(10), None), day("week:a", Some(1), None)];
    state.seed("full", &one[0], 0, 0).await.unwrap();
    state.seed("roomy", &roomy[0], 3, 300).await.unwrap();
    state.seed("two", &two[0], 0, 0).await.unwrap();
    state.seed("two", &two[1], 1, 100).await.unwrap();
    assert!(state
        .reserve(&reservation("r1", "full", &one, 100, later), now)
        .await
        .unwrap());
    let uncapped: [pingpost::auction::CapWindow; 0] = [];
    let room = state
        .caps_room(
            &[
                ("full", &one),
                ("roomy", &roomy),
                ("uncapped", &uncapped),
                ("two", &two),
                ("never-seen", &one),
            ],
            now,
        )
        .await
        .unwrap();
    assert_eq!(room, [false, true, true, false, true]);
    assert!(state.caps_room(&[], now).await.unwrap().is_empty());
}

async fn a_lead_must_fit_every_window_or_reserves_none(backend: &Backend) {
    let state = backend.state();
    let (now, later) = (now(), now() + Duration::minutes(2));
    let day_w = day("day:a", Some(1), None);
    let week_w = day("week:a", Some(5), None);
    state.seed("b", &day_w, 0, 0).await.unwrap();
    state.seed("b", &week_w, 5, 0).await.unwrap();
    assert!(!state
        .reserve(
            &reservation("r1", "b", &[day_w.clone(), week_w], 100, later),
            now
        )
        .await
        .unwrap());
    assert!(
        state
            .reserve(&reservation("r2", "b", &[day_w], 100, later), now)
            .await
            .unwrap(),
        "the refused lead reserved nothing in the day window"
    );
}

crate::conformance!(
    reserved_plus_committed_never_passes_a_count_cap,
    a_spend_cap_admits_a_sale_only_if_it_fits,
    a_reservation_is_held_once_whatever_the_retries,
    releasing_gives_the_room_back_once,
    a_commit_turns_the_reservation_into_committed_spend,
    an_expired_reservation_gives_its_room_back,
    seeding_never_overwrites_known_totals,
    unseeded_lists_the_windows_without_totals,
    caps_room_answers_for_many_buyers_at_once,
    a_lead_must_fit_every_window_or_reserves_none,
);
