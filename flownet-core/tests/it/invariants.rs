use std::collections::HashMap;

use flownet_core::{Action, Amount, ErrorKind, OfferedModel, PriceUnit, TaskStatus, rules};
use proptest::prelude::*;

use crate::support::{Actor, MODEL, World, weights};

#[derive(Debug, Clone)]
enum Op {
    Submit {
        user: usize,
        node: usize,
        max: u64,
        units: u64,
    },
    Cancel {
        user: usize,
        task: u64,
    },
    Claim {
        node: usize,
        task: u64,
    },
    Fulfil {
        node: usize,
        task: u64,
        units: Option<u64>,
    },
    Expire {
        who: usize,
        task: u64,
    },
    Rate {
        who: usize,
        task: u64,
        stars: u8,
    },
    Sweep {
        who: usize,
        task: u64,
    },
    Transfer {
        from: usize,
        to: usize,
        amount: u64,
    },
    Reprice {
        node: usize,
        price: u64,
        metered: bool,
    },
    Toggle {
        node: usize,
        active: bool,
    },
    Wait {
        seconds: u64,
    },
}

const USERS: usize = 4;
const NODES: usize = 3;

fn op() -> impl Strategy<Value = Op> {
    let task = 1u64..40;
    prop_oneof![
        4 => (0..USERS, 0..NODES, 0u64..20_000_000_000, prop_oneof![Just(0u64), 0u64..3000]).prop_map(|(user, node, max, units)| Op::Submit { user, node, max, units }),
        1 => (0..USERS, task.clone()).prop_map(|(user, task)| Op::Cancel { user, task }),
        3 => (0..NODES, task.clone()).prop_map(|(node, task)| Op::Claim { node, task }),
        3 => (0..NODES, task.clone(), prop::option::of(0u64..3000)).prop_map(|(node, task, units)| Op::Fulfil { node, task, units }),
        1 => (0..USERS + NODES, task.clone()).prop_map(|(who, task)| Op::Expire { who, task }),
        3 => (0..USERS + NODES, task.clone(), 0u8..7).prop_map(|(who, task, stars)| Op::Rate { who, task, stars }),
        1 => (0..USERS + NODES, task).prop_map(|(who, task)| Op::Sweep { who, task }),
        1 => (0..USERS + NODES, 0..USERS + NODES, 0u64..300_000_000_000).prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        1 => (0..NODES, 0u64..15_000_000_000, any::<bool>()).prop_map(|(node, price, metered)| Op::Reprice { node, price, metered }),
        1 => (0..NODES, any::<bool>()).prop_map(|(node, active)| Op::Toggle { node, active }),
        2 => prop_oneof![0u64..400, 500u64..700, Just(7 * 24 * 3600)].prop_map(|seconds| Op::Wait { seconds }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Thousands of random actions (64 runs of up to 120) keep the supply invariant
    /// (checked by `World::act` after every one), never pay or refund a task twice, and
    /// split every settled escrow exactly into what was paid and what came back, for
    /// offers priced per task and per 1,000 tokens alike.
    #[test]
    fn random_actions_keep_supply_and_pay_each_task_once(ops in prop::collection::vec(op(), 1..120)) {
        let mut w = World::new();
        let users: Vec<Actor> = (0..USERS).map(|_| w.funded()).collect();
        let nodes: Vec<Actor> = (0..NODES).map(|i| w.node(Amount(100_000_000 * (i as u64 + 1)))).collect();
        let everyone: Vec<&Actor> = users.iter().chain(nodes.iter()).collect();
        let mut settled: HashMap<u64, &'static str> = HashMap::new();
        for op in ops {
            let (who, action): (&Actor, Action) = match op {
                Op::Submit { user, node, max, units } => (&users[user], Action::Submit {
                    node: nodes[node].address, model_id: MODEL.into(), prompt: "p".into(), params: "{}".into(), max_price: Amount(max), input: None, max_units: units,
                }),
                Op::Cancel { user, task } => (&users[user], Action::Cancel { task }),
                Op::Claim { node, task } => (&nodes[node], Action::Claim { task }),
                Op::Fulfil { node, task, units } => (&nodes[node], Action::Fulfil { task, result: World::output(), units }),
                Op::Expire { who, task } => (everyone[who], Action::Expire { task }),
                Op::Rate { who, task, stars } => (everyone[who], Action::Rate { task, stars }),
                Op::Sweep { who, task } => (everyone[who], Action::Sweep { task }),
                Op::Transfer { from, to, amount } => (everyone[from], Action::Transfer { to: everyone[to].address, amount: Amount(amount) }),
                Op::Reprice { node, price, metered } => (&nodes[node], Action::RegisterNode {
                    name: "n".into(), endpoint: "http://n".into(),
                    models: vec![OfferedModel {
                        model_id: MODEL.into(), weights_sha256: weights(), price: Amount(price),
                        unit: if metered { PriceUnit::ThousandTokens } else { PriceUnit::Task },
                    }],
                }),
                Op::Toggle { node, active } => (&nodes[node], Action::SetNodeActive { active }),
                Op::Wait { seconds } => { w.now += seconds; continue; }
            };
            let settles = match &action {
                Action::Fulfil { task, .. } => Some((*task, "paid")),
                Action::Cancel { task } | Action::Expire { task } => Some((*task, "refunded")),
                _ => None,
            };
            let before = w.store.state.clone();
            match w.act(who, action) {
                Ok(_) => {
                    if let Some((task, how)) = settles {
                        prop_assert!(settled.insert(task, how).is_none(), "task {task} settled twice");
                    }
                }
                Err(e) => {
                    prop_assert!(e.kind() != ErrorKind::Storage && e.kind() != ErrorKind::Overflow, "{e}");
                    // A rejection changes nothing but the signer's sequence number.
                    let mut expected = before;
                    expected.accounts.get_mut(&who.address).unwrap().sequence += 1;
                    prop_assert_eq!(&w.store.state, &expected);
                }
            }
        }
        for (id, t) in &w.store.state.tasks {
            match settled.get(id) {
                Some(&"paid") => {
                    prop_assert_eq!(t.status, TaskStatus::Fulfilled);
                    // What the node was paid for and what came back make the escrow.
                    let cost = match (t.unit_price, t.units) {
                        (None, None) => t.price,
                        (Some(p), Some(u)) => rules::metered_cost(p, u).unwrap(),
                        other => return Err(TestCaseError::fail(format!("task {id} settled as {other:?}"))),
                    };
                    prop_assert_eq!(cost.checked_add(t.refunded).unwrap(), t.price);
                }
                Some(_) => {
                    prop_assert!(matches!(t.status, TaskStatus::Cancelled | TaskStatus::Expired));
                    prop_assert_eq!(t.refunded, t.price);
                }
                None => prop_assert!(!t.status.is_final()),
            }
        }
    }
}
