use flownet_core::{Action, Amount, Envelope, Error, ErrorKind, TaskStatus};

use crate::support::{Actor, MODEL, World};

fn kind<T: std::fmt::Debug>(r: flownet_core::Result<T>) -> ErrorKind {
    r.expect_err("the action must be rejected").kind()
}

#[test]
fn faucet_grants_once() {
    let mut w = World::new();
    let a = w.funded();
    assert_eq!(w.balance(&a), w.config.faucet_amount);
    assert_eq!(kind(w.act(&a, Action::Faucet)), ErrorKind::Faucet);
    assert_eq!(w.store.state.globals.total_minted, w.config.faucet_amount);
}

#[test]
fn faucet_can_be_disabled() {
    let mut w = World::new();
    w.config.faucet_amount = Amount::ZERO;
    let a = Actor::new();
    w.act(
        &a,
        Action::CreateAccount {
            public_key: a.key.public_key(),
            hash_algo: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(kind(w.act(&a, Action::Faucet)), ErrorKind::Faucet);
}

#[test]
fn accounts_are_created_once_at_their_derived_address() {
    let mut w = World::new();
    let a = Actor::new();
    w.act(
        &a,
        Action::CreateAccount {
            public_key: a.key.public_key(),
            hash_algo: Default::default(),
        },
    )
    .unwrap();
    let again = Envelope {
        ledger: w.ledger,
        signer: a.address,
        sequence: 0,
        action: Action::CreateAccount {
            public_key: a.key.public_key(),
            hash_algo: Default::default(),
        },
    };
    let r = flownet_core::rules::execute(
        &mut w.store,
        &w.config,
        &w.ledger,
        &again.sign(&a.key),
        w.now,
    );
    assert_eq!(kind(r), ErrorKind::AlreadyExists);
    // Someone else's key at my address is refused.
    let b = Actor::new();
    let squat = Envelope {
        ledger: w.ledger,
        signer: b.address,
        sequence: 0,
        action: Action::CreateAccount {
            public_key: a.key.public_key(),
            hash_algo: Default::default(),
        },
    };
    let r = flownet_core::rules::execute(
        &mut w.store,
        &w.config,
        &w.ledger,
        &squat.sign(&a.key),
        w.now,
    );
    assert_eq!(kind(r), ErrorKind::InvalidInput);
}

#[test]
fn bad_signature_and_replay_are_refused_without_changes() {
    let mut w = World::new();
    let a = w.funded();
    let b = w.funded();
    let before = w.store.state.clone();
    // Signed by the wrong key.
    let env = Envelope {
        ledger: w.ledger,
        signer: a.address,
        sequence: w.seq(&a),
        action: Action::Transfer {
            to: b.address,
            amount: Amount(1),
        },
    };
    let forged = env.clone().sign(&b.key);
    let r = flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &forged, w.now);
    assert!(matches!(r, Err(Error::BadSignature(addr)) if addr == a.address));
    assert_eq!(w.store.state, before);
    // Genuine, then replayed.
    let good = env.sign(&a.key);
    flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &good, w.now).unwrap();
    let after = w.store.state.clone();
    let r = flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &good, w.now);
    assert_eq!(kind(r), ErrorKind::BadSequence);
    assert_eq!(w.store.state, after);
    // An envelope for another ledger.
    let other = Envelope {
        ledger: flownet_core::Digest32([9; 32]),
        signer: a.address,
        sequence: w.seq(&a),
        action: Action::Faucet,
    };
    let r = flownet_core::rules::execute(
        &mut w.store,
        &w.config,
        &w.ledger,
        &other.sign(&a.key),
        w.now,
    );
    assert_eq!(kind(r), ErrorKind::InvalidInput);
}

#[test]
fn a_rejected_action_consumes_its_sequence_number_but_changes_nothing_else() {
    let mut w = World::new();
    let a = w.funded();
    let b = w.funded();
    let seq = w.seq(&a);
    let too_much = Envelope {
        ledger: w.ledger,
        signer: a.address,
        sequence: seq,
        action: Action::Transfer {
            to: b.address,
            amount: Amount::tokens(5000),
        },
    }
    .sign(&a.key);
    let before_balances = (w.balance(&a), w.balance(&b));
    let r = flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &too_much, w.now);
    assert_eq!(kind(r), ErrorKind::InsufficientFunds);
    assert_eq!((w.balance(&a), w.balance(&b)), before_balances);
    assert_eq!(w.seq(&a), seq + 1);
    // Even once funds arrive, the captured envelope cannot be replayed.
    w.act(
        &b,
        Action::Transfer {
            to: a.address,
            amount: Amount::tokens(1000),
        },
    )
    .unwrap();
    let r = flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &too_much, w.now);
    assert_eq!(kind(r), ErrorKind::BadSequence);
}

#[test]
fn submit_escrows_the_listed_price() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(2));
    let user = w.funded();
    let start = w.balance(&user);
    let id = w.submit(&user, &node, Amount::tokens(3)).unwrap();
    assert_eq!(
        w.balance(&user),
        start.checked_sub(Amount::tokens(2)).unwrap()
    );
    assert_eq!(w.store.state.globals.escrowed, Amount::tokens(2));
    let t = &w.store.state.tasks[&id];
    assert_eq!(t.status, TaskStatus::Open);
    assert_eq!(t.claim_deadline, w.now + 300);
    assert_eq!(t.weights_sha256, crate::support::weights());
}

#[test]
fn submit_rejections() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(2));
    let user = w.funded();
    assert_eq!(
        kind(w.submit(&user, &node, Amount::tokens(1))),
        ErrorKind::PriceAboveMax
    );
    let big = "x".repeat(4097);
    let r = w.act(
        &user,
        Action::Submit {
            node: node.address,
            model_id: MODEL.into(),
            prompt: big,
            params: "{}".into(),
            max_price: Amount::tokens(9),
            input: None,
            max_units: 0,
        },
    );
    assert_eq!(kind(r), ErrorKind::PromptTooLarge);
    let ok_prompt = "x".repeat(4096);
    w.act(
        &user,
        Action::Submit {
            node: node.address,
            model_id: MODEL.into(),
            prompt: ok_prompt,
            params: "{}".into(),
            max_price: Amount::tokens(9),
            input: None,
            max_units: 0,
        },
    )
    .unwrap();
    let r = w.act(
        &user,
        Action::Submit {
            node: node.address,
            model_id: MODEL.into(),
            prompt: "p".into(),
            params: format!("{{\"a\":\"{}\"}}", "x".repeat(4096)),
            max_price: Amount::tokens(9),
            input: None,
            max_units: 0,
        },
    );
    assert_eq!(kind(r), ErrorKind::ParamsTooLarge);
    let r = w.act(
        &user,
        Action::Submit {
            node: node.address,
            model_id: MODEL.into(),
            prompt: "p".into(),
            params: "[1]".into(),
            max_price: Amount::tokens(9),
            input: None,
            max_units: 0,
        },
    );
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    let r = w.act(
        &user,
        Action::Submit {
            node: node.address,
            model_id: "other".into(),
            prompt: "p".into(),
            params: "{}".into(),
            max_price: Amount::tokens(9),
            input: None,
            max_units: 0,
        },
    );
    assert_eq!(kind(r), ErrorKind::ModelNotOffered);
    let stranger = Actor::new();
    let r = w.act(
        &user,
        Action::Submit {
            node: stranger.address,
            model_id: MODEL.into(),
            prompt: "p".into(),
            params: "{}".into(),
            max_price: Amount::tokens(9),
            input: None,
            max_units: 0,
        },
    );
    assert_eq!(kind(r), ErrorKind::NotFound);
    w.act(&node, Action::SetNodeActive { active: false })
        .unwrap();
    assert_eq!(
        kind(w.submit(&user, &node, Amount::tokens(9))),
        ErrorKind::NodeInactive
    );
    w.act(&node, Action::SetNodeActive { active: true })
        .unwrap();
    let poor = Actor::new();
    w.act(
        &poor,
        Action::CreateAccount {
            public_key: poor.key.public_key(),
            hash_algo: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(
        kind(w.submit(&poor, &node, Amount::tokens(9))),
        ErrorKind::InsufficientFunds
    );
}

#[test]
fn cancel_refunds_only_the_requester_while_open() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(2));
    let user = w.funded();
    let other = w.funded();
    let start = w.balance(&user);
    let id = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    assert_eq!(
        kind(w.act(&other, Action::Cancel { task: id })),
        ErrorKind::Unauthorized
    );
    w.act(&user, Action::Cancel { task: id }).unwrap();
    assert_eq!(w.balance(&user), start);
    assert_eq!(w.store.state.tasks[&id].status, TaskStatus::Cancelled);
    assert_eq!(
        kind(w.act(&user, Action::Cancel { task: id })),
        ErrorKind::InvalidState
    );
    assert_eq!(
        kind(w.act(&node, Action::Claim { task: id })),
        ErrorKind::InvalidState
    );
    let id2 = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    w.act(&node, Action::Claim { task: id2 }).unwrap();
    assert_eq!(
        kind(w.act(&user, Action::Cancel { task: id2 })),
        ErrorKind::InvalidState
    );
}

#[test]
fn only_the_addressed_node_claims_before_the_deadline() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(2));
    let rival = w.node(Amount::tokens(1));
    let user = w.funded();
    let id = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    assert_eq!(
        kind(w.act(&rival, Action::Claim { task: id })),
        ErrorKind::WrongNode
    );
    assert_eq!(
        kind(w.act(&user, Action::Claim { task: id })),
        ErrorKind::WrongNode
    );
    w.now += 301;
    assert_eq!(
        kind(w.act(&node, Action::Claim { task: id })),
        ErrorKind::DeadlinePassed
    );
    let id2 = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    w.now += 300;
    w.act(&node, Action::Claim { task: id2 }).unwrap();
    assert_eq!(w.store.state.tasks[&id2].fulfil_deadline, Some(w.now + 600));
    assert_eq!(
        kind(w.act(&node, Action::Claim { task: id2 })),
        ErrorKind::InvalidState
    );
}

#[test]
fn fulfil_pays_90_2_5_7_5_and_mints_the_nft_to_the_requester() {
    let mut w = World::new();
    let price = Amount(1_000_000_007); // an odd price, to check the rounding
    let node = w.node(price);
    let user = w.funded();
    let node_start = w.balance(&node);
    let id = w.submit(&user, &node, price).unwrap();
    w.act(&node, Action::Claim { task: id }).unwrap();
    let rival = w.node(price);
    assert_eq!(
        kind(w.act(
            &rival,
            Action::Fulfil {
                task: id,
                result: World::output(),
                units: None,
            }
        )),
        ErrorKind::WrongNode
    );
    let out = w
        .act(
            &node,
            Action::Fulfil {
                task: id,
                result: World::output(),
                units: None,
            },
        )
        .unwrap();
    let to_node = Amount(900_000_006);
    let to_treasury = Amount(25_000_000);
    assert_eq!(w.balance(&node), node_start.checked_add(to_node).unwrap());
    assert_eq!(w.store.state.globals.treasury, to_treasury);
    let t = &w.store.state.tasks[&id];
    assert_eq!(t.bounty_pool, Amount(price.0 - to_node.0 - to_treasury.0));
    assert_eq!(t.status, TaskStatus::Fulfilled);
    let nft = &w.store.state.nfts[&out.nft.unwrap()];
    assert_eq!(nft.owner, user.address);
    assert_eq!(nft.prompt, "rolling hills");
    assert_eq!(nft.weights_sha256, crate::support::weights());
    assert_eq!(nft.output, World::output());
    assert_eq!(w.store.state.nodes[&node.address].stats.fulfilled, 1);
    // Paid once only.
    assert_eq!(
        kind(w.act(
            &node,
            Action::Fulfil {
                task: id,
                result: World::output(),
                units: None,
            }
        )),
        ErrorKind::InvalidState
    );
}

#[test]
fn fulfil_after_the_deadline_is_refused_and_the_task_expires_as_missed() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(2));
    let user = w.funded();
    let start = w.balance(&user);
    let id = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    w.act(&node, Action::Claim { task: id }).unwrap();
    assert_eq!(
        kind(w.act(&user, Action::Expire { task: id })),
        ErrorKind::DeadlineNotPassed
    );
    w.now += 601;
    assert_eq!(
        kind(w.act(
            &node,
            Action::Fulfil {
                task: id,
                result: World::output(),
                units: None,
            }
        )),
        ErrorKind::DeadlinePassed
    );
    let anyone = w.funded();
    w.act(&anyone, Action::Expire { task: id }).unwrap();
    assert_eq!(w.balance(&user), start);
    assert_eq!(w.store.state.nodes[&node.address].stats.missed, 1);
    assert_eq!(
        kind(w.act(&anyone, Action::Expire { task: id })),
        ErrorKind::InvalidState
    );
}

#[test]
fn an_unclaimed_task_that_expires_is_its_nodes_miss() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(2));
    let user = w.funded();
    let id = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    w.now += 301;
    w.act(&user, Action::Expire { task: id }).unwrap();
    assert_eq!(w.store.state.nodes[&node.address].stats.missed, 1);
    assert_eq!(
        w.store.state.nodes[&node.address].stats.reliability(),
        Some(0.0)
    );
}

#[test]
fn a_node_declines_before_the_deadline_and_the_requester_is_refunded_at_once() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(2));
    let other = w.node(Amount::tokens(2));
    let user = w.funded();
    let start = w.balance(&user);
    let decline = |task, reason: &str| Action::Decline {
        task,
        reason: reason.into(),
    };
    let id = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    assert_eq!(
        kind(w.act(&other, decline(id, "not mine"))),
        ErrorKind::WrongNode
    );
    assert_eq!(kind(w.act(&user, decline(id, "no"))), ErrorKind::WrongNode);
    for bad in ["", "  ", "tab\there", &"x".repeat(257)] {
        assert_eq!(
            kind(w.act(&node, decline(id, bad))),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    w.act(&node, decline(id, "the input is not an image"))
        .unwrap();
    let t = &w.store.state.tasks[&id];
    assert_eq!(t.status, TaskStatus::Declined);
    assert_eq!(t.refunded, Amount::tokens(2));
    assert_eq!(
        t.declined_reason.as_deref(),
        Some("the input is not an image")
    );
    assert_eq!(w.balance(&user), start);
    assert_eq!(w.store.state.globals.escrowed, Amount::ZERO);
    let stats = &w.store.state.nodes[&node.address].stats;
    assert_eq!((stats.declined, stats.missed, stats.fulfilled), (1, 0, 0));
    assert_eq!(
        kind(w.act(&node, decline(id, "again"))),
        ErrorKind::InvalidState
    );
    // Claimed, before the fulfil deadline: still declinable.
    let id = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    w.act(&node, Action::Claim { task: id }).unwrap();
    w.act(&node, decline(id, "out of memory")).unwrap();
    assert_eq!(w.balance(&user), start);
    // Past the deadline a decline would hide a miss: refused.
    let id = w.submit(&user, &node, Amount::tokens(2)).unwrap();
    w.now += 301;
    assert_eq!(
        kind(w.act(&node, decline(id, "late"))),
        ErrorKind::DeadlinePassed
    );
}

#[test]
fn any_text_becomes_a_valid_decline_reason() {
    use flownet_core::rules::{check_decline_reason, decline_reason};
    for text in ["", "   ", "line\nbreak", &"é".repeat(300), "ok"] {
        let r = decline_reason(text);
        check_decline_reason(&r).unwrap();
        assert!(r.len() <= flownet_core::rules::MAX_DECLINE_REASON_BYTES);
    }
    assert_eq!(decline_reason("a\nb"), "a b");
}

#[test]
fn outputs_can_be_rated_once_per_rater_and_not_by_the_node() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(4));
    let user = w.funded();
    let id = w.submit(&user, &node, Amount::tokens(4)).unwrap();
    assert_eq!(
        kind(w.act(&user, Action::Rate { task: id, stars: 5 })),
        ErrorKind::InvalidState
    );
    w.act(&node, Action::Claim { task: id }).unwrap();
    w.act(
        &node,
        Action::Fulfil {
            task: id,
            result: World::output(),
            units: None,
        },
    )
    .unwrap();
    assert_eq!(
        kind(w.act(&node, Action::Rate { task: id, stars: 5 })),
        ErrorKind::Unauthorized
    );
    assert_eq!(
        kind(w.act(&user, Action::Rate { task: id, stars: 0 })),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(w.act(&user, Action::Rate { task: id, stars: 6 })),
        ErrorKind::InvalidInput
    );
    w.act(&user, Action::Rate { task: id, stars: 5 }).unwrap();
    assert_eq!(
        kind(w.act(&user, Action::Rate { task: id, stars: 1 })),
        ErrorKind::AlreadyRated
    );
}

#[test]
fn the_first_three_raters_share_the_bounty_and_ratings_never_mint() {
    let mut w = World::new();
    let node = w.node(Amount(1_000_000_001));
    let user = w.funded();
    let id = w.fulfilled(&user, &node);
    let pool = w.store.state.tasks[&id].bounty_pool;
    let minted = w.store.state.globals.total_minted;
    let raters: Vec<_> = (0..4).map(|_| w.funded()).collect();
    let minted_after_faucets = w.store.state.globals.total_minted;
    let mut paid = Amount::ZERO;
    for (i, r) in raters.iter().enumerate() {
        let before = w.balance(r);
        let out = w.act(r, Action::Rate { task: id, stars: 4 }).unwrap();
        let got = w.balance(r).checked_sub(before).unwrap();
        assert_eq!(out.credited, Some(got));
        if i < 3 {
            assert!(got.0 >= pool.0 / 3, "rater {i} got {got}");
        } else {
            assert_eq!(got, Amount::ZERO, "the fourth rater earns nothing");
        }
        paid = paid.checked_add(got).unwrap();
    }
    assert_eq!(paid, pool, "the three shares empty the pool exactly");
    assert_eq!(w.store.state.tasks[&id].bounty_pool, Amount::ZERO);
    assert!(minted_after_faucets > minted);
    assert_eq!(
        w.store.state.globals.total_minted, minted_after_faucets,
        "rating minted tokens"
    );
    let stats = &w.store.state.nodes[&node.address].stats;
    assert_eq!(
        (
            stats.ratings_count,
            stats.community_count,
            stats.community_sum
        ),
        (0, 4, 16)
    );
}

#[test]
fn reputation_counts_only_the_payers_rating() {
    let mut w = World::new();
    let good = w.node(Amount::tokens(1));
    let bad = w.node(Amount::tokens(1));
    let user = w.funded();
    let t1 = w.fulfilled(&user, &good);
    let t2 = w.fulfilled(&user, &bad);
    w.act(&user, Action::Rate { task: t1, stars: 5 }).unwrap();
    w.act(&user, Action::Rate { task: t2, stars: 1 }).unwrap();
    // A crowd of fresh accounts praising the bad node moves only its community score.
    for _ in 0..10 {
        let sybil = w.funded();
        w.act(&sybil, Action::Rate { task: t2, stars: 5 }).unwrap();
    }
    let g = &w.store.state.nodes[&good.address].stats;
    let b = &w.store.state.nodes[&bad.address].stats;
    // Each payer's stars weigh what it paid (1 token here) against a prior of 3 stars
    // weighing 1 token: (3 + 5) / 2 and (3 + 1) / 2.
    assert!((g.score() - 4.0).abs() < 1e-12);
    assert!((b.score() - 2.0).abs() < 1e-12);
    assert_eq!(b.community_score(), Some(5.0));
    assert_eq!(g.reliability(), Some(1.0));
    let mut nodes: Vec<_> = w.store.state.nodes.values().cloned().collect();
    flownet_core::rank_nodes(&mut nodes);
    assert_eq!(nodes[0].owner, good.address);
    assert_eq!(nodes.last().unwrap().owner, bad.address);
}

#[test]
fn ranking_breaks_score_ties_by_price() {
    let mut w = World::new();
    let dear = w.node(Amount::tokens(3));
    let cheap = w.node(Amount::tokens(1));
    let mut nodes: Vec<_> = w.store.state.nodes.values().cloned().collect();
    flownet_core::rank_nodes(&mut nodes);
    assert_eq!(nodes[0].owner, cheap.address);
    assert_eq!(nodes[1].owner, dear.address);
}

#[test]
fn sweep_moves_unclaimed_bounty_to_the_treasury_after_seven_days() {
    let mut w = World::new();
    let node = w.node(Amount::tokens(4));
    let user = w.funded();
    let id = w.fulfilled(&user, &node);
    w.act(&user, Action::Rate { task: id, stars: 4 }).unwrap();
    let left = w.store.state.tasks[&id].bounty_pool;
    let treasury = w.store.state.globals.treasury;
    assert_eq!(
        kind(w.act(&user, Action::Sweep { task: id })),
        ErrorKind::DeadlineNotPassed
    );
    w.now += 7 * 24 * 3600 + 1;
    let late = w.funded();
    let out = w.act(&late, Action::Rate { task: id, stars: 3 }).unwrap();
    assert_eq!(
        out.credited,
        Some(Amount::ZERO),
        "no bounty after the window"
    );
    w.act(&late, Action::Sweep { task: id }).unwrap();
    assert_eq!(
        w.store.state.globals.treasury,
        treasury.checked_add(left).unwrap()
    );
    assert_eq!(
        kind(w.act(&late, Action::Sweep { task: id })),
        ErrorKind::InvalidInput
    );
}

#[test]
fn node_registration_is_validated() {
    let mut w = World::new();
    let n = w.funded();
    let offer = |id: &str| flownet_core::OfferedModel {
        model_id: id.into(),
        weights_sha256: crate::support::weights(),
        price: Amount(1),
        unit: flownet_core::PriceUnit::Task,
    };
    let reg = |name: &str, endpoint: &str, models: Vec<flownet_core::OfferedModel>| {
        Action::RegisterNode {
            name: name.into(),
            endpoint: endpoint.into(),
            models,
        }
    };
    assert_eq!(
        kind(w.act(&n, reg("", "http://x", vec![offer("a")]))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(w.act(&n, reg("n", "ftp://x", vec![offer("a")]))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(w.act(&n, reg("n", "http://x", vec![]))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(w.act(&n, reg("n", "http://x", vec![offer("Bad Id")]))),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(w.act(&n, reg("n", "http://x", vec![offer("a"), offer("a")]))),
        ErrorKind::InvalidInput
    );
    w.act(&n, reg("n", "http://x", vec![offer("a")])).unwrap();
    assert_eq!(
        kind(w.act(&Actor::new(), Action::SetNodeActive { active: false })),
        ErrorKind::NotFound
    );
}

#[test]
fn transfers_move_tokens_between_existing_accounts() {
    let mut w = World::new();
    let a = w.funded();
    let b = w.funded();
    w.act(
        &a,
        Action::Transfer {
            to: b.address,
            amount: Amount::tokens(10),
        },
    )
    .unwrap();
    assert_eq!(w.balance(&b), Amount::tokens(1010));
    assert_eq!(
        kind(w.act(
            &a,
            Action::Transfer {
                to: Actor::new().address,
                amount: Amount(1)
            }
        )),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(w.act(
            &a,
            Action::Transfer {
                to: b.address,
                amount: Amount::ZERO
            }
        )),
        ErrorKind::InvalidInput
    );
}

#[test]
fn sha2_accounts_sign_with_sha2_only() {
    use flownet_core::HashAlgo;
    let mut w = World::new();
    let a = Actor::new();
    let sign = |w: &World, sequence: u64, action: Action, algo: HashAlgo| {
        Envelope {
            ledger: w.ledger,
            signer: a.address,
            sequence,
            action,
        }
        .sign_with(&a.key, algo)
    };
    let create = Action::CreateAccount {
        public_key: a.key.public_key(),
        hash_algo: HashAlgo::Sha2_256,
    };
    // A CreateAccount that names SHA2-256 must itself be signed with it.
    let wrong = sign(&w, 0, create.clone(), HashAlgo::Sha3_256);
    let r = flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &wrong, w.now);
    assert_eq!(kind(r), ErrorKind::BadSignature);
    let right = sign(&w, 0, create, HashAlgo::Sha2_256);
    flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &right, w.now).unwrap();
    assert_eq!(
        w.store.state.accounts[&a.address].hash_algo,
        HashAlgo::Sha2_256
    );
    // Later envelopes verify under the account's algorithm, not the default.
    let sha3 = sign(&w, 1, Action::Faucet, HashAlgo::Sha3_256);
    let r = flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &sha3, w.now);
    assert_eq!(kind(r), ErrorKind::BadSignature);
    assert_eq!(w.seq(&a), 1, "a forged envelope spends no sequence number");
    let sha2 = sign(&w, 1, Action::Faucet, HashAlgo::Sha2_256);
    flownet_core::rules::execute(&mut w.store, &w.config, &w.ledger, &sha2, w.now).unwrap();
    assert_eq!(w.balance(&a), w.config.faucet_amount);
}

#[test]
fn a_cheap_rating_moves_the_score_less_than_a_dear_one() {
    let mut w = World::new();
    let cheap = w.node(Amount::tokens(1).mul_div(1, 100));
    let dear = w.node(Amount::tokens(10));
    let user = w.funded();
    let t1 = w.fulfilled(&user, &cheap);
    let t2 = w.fulfilled(&user, &dear);
    w.act(&user, Action::Rate { task: t1, stars: 5 }).unwrap();
    w.act(&user, Action::Rate { task: t2, stars: 5 }).unwrap();
    let c = w.store.state.nodes[&cheap.address].stats.score();
    let d = w.store.state.nodes[&dear.address].stats.score();
    assert!(c < 3.1, "a 0.01 rating moved the score to {c}");
    assert!(d > 4.8, "a 10-token rating moved the score only to {d}");
}

#[test]
fn a_node_without_a_record_ranks_below_one_with_a_record_however_cheap() {
    let mut w = World::new();
    let proven = w.node(Amount::tokens(2));
    let fresh = w.node(Amount::tokens(1));
    let user = w.funded();
    w.fulfilled(&user, &proven);
    let mut nodes: Vec<_> = w.store.state.nodes.values().cloned().collect();
    flownet_core::rank_nodes(&mut nodes);
    assert_eq!(nodes[0].owner, proven.address);
    assert_eq!(nodes[1].owner, fresh.address);
    assert_eq!(nodes[1].stats.reliability_bound(), 0.0);
}
