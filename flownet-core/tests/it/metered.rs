//! Offers priced per 1,000 tokens, and task inputs named by content address.

use flownet_core::{
    Action, Amount, Digest32, ErrorKind, InputRef, OfferedModel, PriceUnit, TaskStatus, rules,
};

use crate::support::{Actor, World, weights};

const LLM: &str = "smollm2";

fn llm_node(w: &mut World, per_thousand: Amount) -> Actor {
    let n = w.funded();
    w.act(
        &n,
        Action::RegisterNode {
            name: "llm".into(),
            endpoint: "http://127.0.0.1:7070".into(),
            models: vec![
                OfferedModel {
                    model_id: LLM.into(),
                    weights_sha256: weights(),
                    price: per_thousand,
                    unit: PriceUnit::ThousandTokens,
                },
                OfferedModel {
                    model_id: "terrain".into(),
                    weights_sha256: weights(),
                    price: Amount::tokens(1),
                    unit: PriceUnit::Task,
                },
            ],
        },
    )
    .unwrap();
    n
}

fn submit(
    w: &mut World,
    user: &Actor,
    node: &Actor,
    model: &str,
    max_units: u64,
) -> flownet_core::Result<u64> {
    w.act(
        user,
        Action::Submit {
            node: node.address,
            model_id: model.into(),
            prompt: "hello".into(),
            params: "{}".into(),
            max_price: Amount::tokens(1000),
            input: None,
            max_units,
        },
    )
    .map(|o| o.task.unwrap())
}

fn fulfil(
    w: &mut World,
    node: &Actor,
    task: u64,
    units: Option<u64>,
) -> flownet_core::Result<flownet_core::Outcome> {
    w.act(
        node,
        Action::Fulfil {
            task,
            result: World::output(),
            units,
        },
    )
}

#[test]
fn a_metered_task_escrows_its_limit_and_pays_for_what_it_delivers() {
    let mut w = World::new();
    let user = w.funded();
    let node = llm_node(&mut w, Amount::tokens(2));
    let before = w.balance(&user);
    let id = submit(&mut w, &user, &node, LLM, 500).unwrap();
    // 500 tokens at 2 FLOWNET per 1,000: 1 FLOWNET held.
    assert_eq!(
        before.checked_sub(w.balance(&user)).unwrap(),
        Amount::tokens(1)
    );
    let task = w.store.state.tasks[&id].clone();
    assert_eq!(task.price, Amount::tokens(1));
    assert_eq!(task.unit_price, Some(Amount::tokens(2)));
    assert_eq!(task.max_units, 500);
    w.act(&node, Action::Claim { task: id }).unwrap();
    let node_before = w.balance(&node);
    // 120 tokens cost 0.24; the node gets 90 % of that, the rest of the escrow returns.
    let out = fulfil(&mut w, &node, id, Some(120)).unwrap();
    let cost = Amount(24_000_000);
    assert_eq!(out.credited, Some(cost.mul_div(900, 1000)));
    assert_eq!(
        w.balance(&node).checked_sub(node_before).unwrap(),
        Amount(21_600_000)
    );
    assert_eq!(
        before.checked_sub(w.balance(&user)).unwrap(),
        cost,
        "the requester paid exactly the tokens delivered"
    );
    let task = &w.store.state.tasks[&id];
    assert_eq!(task.status, TaskStatus::Fulfilled);
    assert_eq!(task.units, Some(120));
    assert_eq!(task.refunded, Amount(76_000_000));
    assert_eq!(
        task.bounty_pool,
        cost.checked_sub(Amount(21_600_000))
            .unwrap()
            .checked_sub(cost.mul_div(25, 1000))
            .unwrap()
    );
    let nft = w.store.state.nfts.values().find(|n| n.task == id).unwrap();
    assert_eq!(nft.units, Some(120));
}

#[test]
fn costs_round_down_in_base_units() {
    assert_eq!(rules::metered_cost(Amount(3), 1).unwrap(), Amount(0));
    assert_eq!(rules::metered_cost(Amount(1000), 999).unwrap(), Amount(999));
    assert_eq!(
        rules::metered_cost(Amount::tokens(1), 1).unwrap(),
        Amount(100_000)
    );
    assert_eq!(
        rules::metered_cost(Amount(u64::MAX), 1000).unwrap(),
        Amount(u64::MAX)
    );
    assert_eq!(
        rules::metered_cost(Amount(u64::MAX), 1001)
            .unwrap_err()
            .kind(),
        ErrorKind::Overflow
    );
}

#[test]
fn units_must_match_how_the_task_is_priced() {
    let mut w = World::new();
    let user = w.funded();
    let node = llm_node(&mut w, Amount::tokens(2));
    let e = submit(&mut w, &user, &node, LLM, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid input: model smollm2 is priced per 1,000 tokens: max_units must be 1 to 1048576"
    );
    let e = submit(&mut w, &user, &node, LLM, rules::MAX_TASK_UNITS + 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = submit(&mut w, &user, &node, "terrain", 10).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid input: model terrain is priced per task: max_units must be 0"
    );
    let metered = submit(&mut w, &user, &node, LLM, 100).unwrap();
    let flat = submit(&mut w, &user, &node, "terrain", 0).unwrap();
    for id in [metered, flat] {
        w.act(&node, Action::Claim { task: id }).unwrap();
    }
    assert_eq!(
        fulfil(&mut w, &node, metered, None)
            .unwrap_err()
            .to_string(),
        format!("invalid input: task {metered} is metered: the fulfilment must state its units")
    );
    assert_eq!(
        fulfil(&mut w, &node, metered, Some(101))
            .unwrap_err()
            .to_string(),
        format!(
            "invalid input: task {metered} allows at most 100 units, the fulfilment states 101"
        )
    );
    assert_eq!(
        fulfil(&mut w, &node, flat, Some(1))
            .unwrap_err()
            .to_string(),
        format!("invalid input: task {flat} is priced per task: a fulfilment states no units")
    );
    // The whole limit, and nothing at all, are both fine.
    fulfil(&mut w, &node, metered, Some(100)).unwrap();
    assert_eq!(w.store.state.tasks[&metered].refunded, Amount::ZERO);
    fulfil(&mut w, &node, flat, None).unwrap();
}

#[test]
fn a_metered_task_that_expires_returns_all_its_escrow() {
    let mut w = World::new();
    let user = w.funded();
    let node = llm_node(&mut w, Amount::tokens(4));
    let before = w.balance(&user);
    let id = submit(&mut w, &user, &node, LLM, 1000).unwrap();
    w.now += w.config.claim_window_s + 1;
    w.act(&user, Action::Expire { task: id }).unwrap();
    assert_eq!(w.balance(&user), before);
    assert_eq!(w.store.state.tasks[&id].refunded, Amount::tokens(4));
}

#[test]
fn the_price_cap_applies_to_the_escrow() {
    let mut w = World::new();
    let user = w.funded();
    let node = llm_node(&mut w, Amount::tokens(2));
    let e = w
        .act(
            &user,
            Action::Submit {
                node: node.address,
                model_id: LLM.into(),
                prompt: "hi".into(),
                params: "{}".into(),
                max_price: Amount(99_999_999),
                input: None,
                max_units: 500,
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PriceAboveMax);
    let offer = &w.store.state.nodes[&node.address].models[0].clone();
    let (units, escrow, cap) = rules::quote(offer, None, &serde_json::Map::new(), None).unwrap();
    assert_eq!(
        (units, escrow, cap),
        (
            rules::DEFAULT_MAX_UNITS,
            Amount(51_200_000),
            Amount(51_200_000)
        )
    );
    let params = serde_json::json!({"max_tokens": 10})
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(
        rules::quote(offer, None, &params, Some(Amount::tokens(3))).unwrap(),
        (10, Amount(2_000_000), Amount(3_000_000))
    );
    let flat = &w.store.state.nodes[&node.address].models[1].clone();
    assert!(rules::quote(flat, Some(5), &params, None).is_err());
    assert_eq!(
        rules::quote(flat, None, &params, None).unwrap(),
        (0, Amount::tokens(1), Amount::tokens(1))
    );
}

fn input(size: u64, uri: &str) -> InputRef {
    InputRef {
        sha256: Digest32([9; 32]),
        size,
        uri: uri.into(),
    }
}

#[test]
fn inputs_are_named_by_hash_and_size_and_checked() {
    let mut w = World::new();
    let user = w.funded();
    let node = llm_node(&mut w, Amount::tokens(2));
    let with = |input: InputRef| Action::Submit {
        node: node.address,
        model_id: LLM.into(),
        prompt: "sha256:0909".into(),
        params: "{}".into(),
        max_price: Amount::tokens(10),
        input: Some(input),
        max_units: 64,
    };
    let e = w
        .act(&user, with(input(0, "http://h/blobs/x")))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid input: an input is 1 to 16777216 bytes, this one 0"
    );
    let e = w
        .act(
            &user,
            with(input(rules::MAX_INPUT_BYTES + 1, "http://h/blobs/x")),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    for bad in [
        "ftp://h/x",
        "http://h/a b",
        "http://h/\u{e9}",
        "http://h/x\n",
        "",
    ] {
        let e = w.act(&user, with(input(10, bad))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid input: input uri must be an http:// or https:// URL of at most 1024 printable ASCII bytes",
            "{bad:?}"
        );
    }
    let long = format!("http://h/{}", "a".repeat(1024));
    assert!(w.act(&user, with(input(10, &long))).is_err());
    let before = w.balance(&user);
    let id = w
        .act(&user, with(input(10, "http://127.0.0.1:9/blobs/0909")))
        .unwrap()
        .task
        .unwrap();
    assert!(w.balance(&user) < before);
    let task = &w.store.state.tasks[&id];
    assert_eq!(task.input, Some(input(10, "http://127.0.0.1:9/blobs/0909")));
    w.act(&node, Action::Claim { task: id }).unwrap();
    fulfil(&mut w, &node, id, Some(3)).unwrap();
    let nft = w.store.state.nfts.values().find(|n| n.task == id).unwrap();
    assert_eq!(nft.input, Some(input(10, "http://127.0.0.1:9/blobs/0909")));
}

#[test]
fn an_input_checks_its_bytes() {
    let bytes = b"{\"messages\": []}";
    let good = InputRef {
        sha256: flownet_core::crypto::sha256(bytes),
        size: bytes.len() as u64,
        uri: "http://h/x".into(),
    };
    good.check(bytes).unwrap();
    assert!(good.check(b"{\"messages\": [1]}").is_err());
    let mut wrong_size = good.clone();
    wrong_size.size += 1;
    assert!(
        wrong_size
            .check(bytes)
            .unwrap_err()
            .to_string()
            .contains("bytes")
    );
}

#[test]
fn signed_bytes_of_old_actions_are_unchanged_and_new_fields_are_signed() {
    // A per-task submission without an input signs the bytes it always did; adding
    // an input or a unit limit changes them, so neither can be altered in flight.
    let base = Action::Submit {
        node: flownet_core::Address([3; 8]),
        model_id: "m".into(),
        prompt: "p".into(),
        params: "{}".into(),
        max_price: Amount(5),
        input: None,
        max_units: 0,
    };
    let with_units = Action::Submit {
        node: flownet_core::Address([3; 8]),
        model_id: "m".into(),
        prompt: "p".into(),
        params: "{}".into(),
        max_price: Amount(5),
        input: None,
        max_units: 1,
    };
    let with_input = Action::Submit {
        node: flownet_core::Address([3; 8]),
        model_id: "m".into(),
        prompt: "p".into(),
        params: "{}".into(),
        max_price: Amount(5),
        input: Some(input(1, "http://h/x")),
        max_units: 1,
    };
    let encodings: Vec<Vec<u8>> = [&base, &with_units, &with_input]
        .iter()
        .map(|a| bytes(a))
        .collect();
    assert_ne!(encodings[0], encodings[1]);
    assert_ne!(encodings[1], encodings[2]);
    assert!(encodings[1].starts_with(&encodings[0]));
    let fulfil = |units| Action::Fulfil {
        task: 1,
        result: World::output(),
        units,
    };
    assert_ne!(bytes(&fulfil(None)), bytes(&fulfil(Some(0))));
    assert_ne!(bytes(&fulfil(Some(1))), bytes(&fulfil(Some(2))));
}

fn bytes(action: &Action) -> Vec<u8> {
    flownet_core::Envelope {
        ledger: Digest32([1; 32]),
        signer: flownet_core::Address([3; 8]),
        sequence: 0,
        action: action.clone(),
    }
    .canonical_bytes()
}
