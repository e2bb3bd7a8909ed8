//! Unit tests of the round robin: the walk, the allotment and the plan.

use super::*;

fn request(default_max_in_flight: u32) -> ClaimRequest {
    ClaimRequest {
        default_max_in_flight,
        lease_window: 1,
        ..ClaimRequest::default()
    }
}

fn key(name: &str) -> KeyDue {
    KeyDue {
        key: name.to_string(),
        min_due_ms: 0,
        max_in_flight: Some(4),
        probe_ms: None,
        rate_limit_per_s: None,
        next_send_ms: None,
    }
}

#[test]
fn allotment_is_round_robin_within_room() {
    assert_eq!(allot(&[10, 1, 10], 7), vec![4, 1, 2]);
    assert_eq!(allot(&[10, 1, 10], 13), vec![8, 1, 4]);
    assert_eq!(allot(&[2, 2], 10), vec![2, 2]);
    assert_eq!(allot(&[5, 5, 5], 2), vec![2, 0, 0]);
}

#[test]
fn the_walk_wraps_once_and_stops_at_its_start() {
    let mut walk = KeyWalk::new("b");
    let (after, asked) = walk.next_step(1_000).unwrap();
    assert_eq!(after, "b");
    // Only "c" comes after "b": the walk wraps to the first key.
    assert_eq!(walk.take(vec![key("c")], asked).len(), 1);
    let (after, asked) = walk.next_step(1_000).unwrap();
    assert_eq!(after, "");
    let seen = walk.take(vec![key("a"), key("b"), key("c")], asked);
    let names: Vec<&str> = seen.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(walk.complete());
    assert!(walk.next_step(1_000).is_none());
}

#[test]
fn a_step_read_with_its_wrap_walks_as_two_steps_do() {
    let names = |keys: &[KeyDue]| keys.iter().map(|k| k.key.clone()).collect::<Vec<_>>();
    // One key, which the previous claim ended on: nothing after it, then itself.
    let mut walk = KeyWalk::new("b");
    assert_eq!(walk.wrap_to(), Some("b"));
    let (_, asked) = walk.next_step(1_000).unwrap();
    let seen = walk.take_wrapping(vec![], vec![key("b")], asked);
    assert_eq!(names(&seen), ["b"]);
    assert!(walk.complete());
    assert!(walk.next_step(1_000).is_none());
    // Keys on both sides of the start.
    let mut walk = KeyWalk::new("b");
    let (_, asked) = walk.next_step(1_000).unwrap();
    let seen = walk.take_wrapping(vec![key("c")], vec![key("a"), key("b")], asked);
    assert_eq!(names(&seen), ["c", "a", "b"]);
    assert!(walk.complete());
    // A step filled before the end does not wrap, and the next step may still wrap.
    let mut walk = KeyWalk::new("b");
    let ahead: Vec<KeyDue> = (0..WALK_STEP).map(|i| key(&format!("c{i:03}"))).collect();
    let (_, asked) = walk.next_step(1_000).unwrap();
    assert_eq!(asked, WALK_STEP);
    assert_eq!(walk.take_wrapping(ahead, vec![], asked).len(), WALK_STEP);
    assert!(!walk.complete());
    assert_eq!(walk.wrap_to(), Some("b"));
    // A wrapped walk reads on without wrapping again.
    let mut walk = KeyWalk::new("b");
    let (_, asked) = walk.next_step(WALK_STEP * QUANTUM * 2).unwrap();
    let wrapped: Vec<KeyDue> = (0..asked - 1).map(|i| key(&format!("a{i:03}"))).collect();
    walk.take_wrapping(vec![key("c")], wrapped, asked);
    assert!(!walk.complete());
    assert_eq!(walk.wrap_to(), None);
    let (after, _) = walk.next_step(1_000).unwrap();
    assert_eq!(after, format!("a{:03}", asked - 2));
    // A walk from the first key never wraps.
    assert_eq!(KeyWalk::new("").wrap_to(), None);
}

#[test]
fn a_guessed_round_keeps_what_each_key_may_take() {
    let share = |key: &str, free: usize| KeyShare {
        key: key.to_string(),
        free,
        ids: Vec::new(),
        open: true,
    };
    let ids = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>();
    // "a" was guessed to have more room than it has, "b" less, "c" ran out of rows, and "d" turned
    // out not to be claimable at all.
    let mut shares = vec![share("a", 2), share("b", 8), share("c", 8)];
    let mut gathered = Gathered::new(20);
    gathered.read_guessed(
        &mut shares,
        [
            ("a", 6, ids("a", 6)),
            ("b", 4, ids("b", 4)),
            ("c", 6, ids("c", 3)),
            ("d", 4, ids("d", 4)),
        ],
    );
    assert_eq!(shares[0].ids, ids("a", 2));
    assert_eq!(shares[0].room(), 0);
    assert_eq!(shares[1].ids, ids("b", 4));
    assert_eq!(shares[1].room(), 4, "b may still read on");
    assert_eq!(shares[2].ids, ids("c", 3));
    assert!(!shares[2].open, "c has no more due rows");
    assert_eq!(gathered.remaining, 20 - 2 - 4 - 3);
    // The next round asks only "b" for more.
    assert_eq!(gathered.next_round(&shares), Some(vec![0, 8, 0]));
}

#[test]
fn a_walk_from_the_start_is_complete_at_the_end() {
    let mut walk = KeyWalk::new("");
    let (_, asked) = walk.next_step(1_000).unwrap();
    walk.take(vec![key("a")], asked);
    assert!(walk.complete());
    assert!(walk.next_step(1_000).is_none());
}

#[test]
fn rows_a_key_lacks_go_to_the_others_and_the_cursor_follows_the_last_served() {
    let mut gathered = Gathered::new(6);
    let mut shares = due_shares(
        &[key("a"), key("b")],
        &HashMap::new(),
        0,
        &request(16),
        true,
    );
    assert_eq!(shares[0].free, 4);
    let asks = gathered.next_round(&shares).unwrap();
    assert_eq!(asks, vec![4, 2]);
    let a: Vec<String> = (1..=4).map(|i| format!("a{i}")).collect();
    gathered.read(&mut shares[0], 4, a);
    gathered.read(&mut shares[1], 2, vec!["b1".into()]);
    // "b" has no more due rows, and "a" has no free slot left: the round robin is over.
    assert!(gathered.next_round(&shares).is_none());
    gathered.finish_step(shares);
    let walk = KeyWalk::new("");
    let plan = gathered.plan(&walk, "", Some("b"));
    assert_eq!(plan.picked, ["a1", "a2", "a3", "a4", "b1"]);
    assert_eq!(plan.next_key, "b");
    // The walk did not report completion, so more may be left.
    assert!(plan.more);
}

#[test]
fn a_key_that_runs_out_leaves_its_share_to_the_next_round() {
    let mut gathered = Gathered::new(8);
    let mut shares = due_shares(
        &[key("a"), key("b")],
        &HashMap::new(),
        0,
        &request(16),
        true,
    );
    shares[0].free = 10;
    shares[1].free = 10;
    assert_eq!(gathered.next_round(&shares).unwrap(), vec![4, 4]);
    gathered.read(&mut shares[0], 4, vec!["a1".into()]);
    let b: Vec<String> = (1..=4).map(|i| format!("b{i}")).collect();
    gathered.read(&mut shares[1], 4, b);
    // Three slots are left, and only "b" may have more rows.
    assert_eq!(gathered.next_round(&shares).unwrap(), vec![0, 7]);
}

#[test]
fn a_paced_key_gets_no_more_than_its_rate_allows_now() {
    let paced = |next_send_ms| KeyDue {
        rate_limit_per_s: Some(2),
        next_send_ms,
        ..key("a")
    };
    let fresh = due_shares(&[paced(None)], &HashMap::new(), 10_000, &request(16), true);
    assert_eq!(
        fresh[0].free, 2,
        "one second's worth, under max_in_flight 4"
    );
    let spent = due_shares(
        &[paced(Some(11_000))],
        &HashMap::new(),
        10_000,
        &request(16),
        true,
    );
    assert!(spent.is_empty(), "its next second is taken");
    let half = due_shares(
        &[paced(Some(10_500))],
        &HashMap::new(),
        10_000,
        &request(16),
        true,
    );
    assert_eq!(half[0].free, 1);
}

#[test]
fn an_open_breaker_gives_no_work_and_a_half_open_one_a_single_probe() {
    let open = KeyDue {
        probe_ms: Some(100),
        ..key("a")
    };
    let shares = due_shares(
        &[open.clone(), key("b")],
        &HashMap::new(),
        50,
        &request(16),
        true,
    );
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].key, "b");
    assert_eq!(
        due_keys(std::slice::from_ref(&open), 50),
        Vec::<&str>::new()
    );
    let shares = due_shares(
        std::slice::from_ref(&open),
        &HashMap::new(),
        100,
        &request(16),
        true,
    );
    assert_eq!(shares[0].free, 1);
    let probing = HashMap::from([("a".to_string(), Leases { all: 1, peers: 0 })]);
    assert!(due_shares(&[open], &probing, 100, &request(16), true).is_empty());
}

#[test]
fn keys_lease_ahead_only_with_slots_no_key_could_send_now() {
    let windowed = ClaimRequest {
        lease_window: 4,
        most_ahead: usize::MAX,
        ..request(16)
    };
    let keys = [key("a"), key("b")];
    // Two keys of limit 4 can send 8 at once: a claim of 6 takes only what they can send.
    let shares = step_shares(&keys, &HashMap::new(), 0, &windowed, true, 6);
    assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [4, 4]);
    // A claim of 20 would leave slots idle: the keys get their window.
    let shares = step_shares(&keys, &HashMap::new(), 0, &windowed, true, 20);
    assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [16, 16]);
    // Not while keys the walk has not reached yet may still use those slots.
    let shares = step_shares(&keys, &HashMap::new(), 0, &windowed, false, 20);
    assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [4, 4]);
    // A key sending all it may gets its window's room beyond its requests in flight.
    let busy = HashMap::from([("a".to_string(), Leases { all: 4, peers: 0 })]);
    let shares = step_shares(&keys[..1], &busy, 0, &windowed, true, 20);
    assert_eq!(shares[0].free, 12);
}

#[test]
fn leases_ahead_stop_at_the_room_for_waiting_ones() {
    let keys = [key("a"), key("b")];
    let windowed = |most_ahead| ClaimRequest {
        lease_window: 4,
        most_ahead,
        ..request(16)
    };
    // Each key can send 4 and may hold 16: 10 leases ahead go to the first key, then 2 to the next.
    let shares = step_shares(&keys, &HashMap::new(), 0, &windowed(14), true, 40);
    assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [16, 6]);
    // With no room for waiting leases, the keys get what they can send now.
    let shares = step_shares(&keys, &HashMap::new(), 0, &windowed(0), true, 40);
    assert_eq!(shares.iter().map(|s| s.free).collect::<Vec<_>>(), [4, 4]);
    // A key sending all it may gets only the room, and a key with none left is dropped.
    let busy = HashMap::from([("a".to_string(), Leases { all: 4, peers: 0 })]);
    let shares = step_shares(&keys, &busy, 0, &windowed(3), true, 40);
    assert_eq!(
        shares
            .iter()
            .map(|s| (s.key.as_str(), s.free))
            .collect::<Vec<_>>(),
        [("a", 3), ("b", 4)]
    );
}
