//! Hostile contracts on a live Flow emulator: `cadence/tests/attacks/contracts/
//! FlowNetHostile.cdc`, deployed by an ordinary account, published where the
//! marketplace pays (a FLOWNET receiver) and delivers (an output collection).
//! A re-entering receiver and a re-entering collection try to have one task
//! fulfilled, and paid, more than once; a panicking receiver and a panicking
//! collection try to refuse delivery so that the node is never paid. The suite
//! proves that none of them gains or blocks anything, that none of them is
//! ever called, and that afterwards the marketplace's escrow holds exactly the
//! prices of the open and claimed tasks and its bounty vault exactly the
//! fulfilled tasks' pools. Without an emulator it prints the loud skip notice.

use std::{path::PathBuf, sync::Arc};

use flownet_chain::flow::{FlowLedger, Value, access::TransactionResult};
use flownet_core::{
    Address, Amount, Ledger, LedgerConfig, OfferedModel, SigningKey, TaskId, TaskQuery, TaskStatus,
    Wallet,
};

use crate::scenarios::on_flow::{EMULATOR_LOCK, Emulator, deploy_fresh, emulator_or_skip};

fn cadence(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../cadence")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn amount(s: &str) -> Amount {
    s.parse().unwrap()
}

struct Suite {
    ledger: Arc<FlowLedger>,
    /// Where FlowNetHostile is deployed.
    hostile: Address,
}

impl Suite {
    async fn account(&self) -> Wallet<dyn Ledger> {
        let key = SigningKey::generate();
        let address = self.ledger.create_account(&key).await.unwrap();
        let ledger: Arc<dyn Ledger> = self.ledger.clone();
        let wallet = Wallet::with_address(ledger, key, address);
        wallet.faucet().await.unwrap();
        wallet
    }

    /// A hostile transaction from `cadence/tests/attacks/`, which must succeed.
    async fn install(&self, signer: Address, file: &str, kind: &str, task: TaskId) {
        let code = cadence(&format!("tests/attacks/{file}")).replace(
            "import \"FlowNetHostile\"",
            &format!("import FlowNetHostile from {}", self.hostile),
        );
        self.ledger
            .run_transaction(&code, &[Value::string(kind), Value::uint64(task)], signer)
            .await
            .unwrap_or_else(|e| panic!("{file} {kind}: {e}"));
    }

    /// Fulfils `task` with the project's own transaction and returns what the
    /// chain recorded, events included.
    async fn fulfil(
        &self,
        node: Address,
        task: TaskId,
    ) -> Result<TransactionResult, flownet_core::Error> {
        let sha = flownet_core::crypto::sha256(format!("output of task {task}").as_bytes());
        self.ledger
            .run_transaction(
                &cadence("transactions/fulfil.cdc"),
                &[
                    Value::uint64(task),
                    Value::string(sha.to_string()),
                    Value::string(format!("http://127.0.0.1:1/blobs/{sha}")),
                    Value::string("text/plain"),
                    Value::uint64(24),
                ],
                node,
            )
            .await
    }

    async fn balance(&self, a: Address) -> Amount {
        self.ledger.account(a).await.unwrap().unwrap().balance
    }

    /// The escrow holds exactly the open and claimed tasks' prices, the bounty
    /// vault exactly the fulfilled tasks' pools, and the supply adds up.
    async fn assert_books_balance(&self, accounts: &[Address]) {
        let info = self.ledger.info().await.unwrap();
        let tasks = self.ledger.tasks(TaskQuery::default()).await.unwrap();
        let owed: u64 = tasks
            .iter()
            .filter(|t| matches!(t.status, TaskStatus::Open | TaskStatus::Claimed))
            .map(|t| t.price.0)
            .sum();
        let pools: u64 = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Fulfilled)
            .map(|t| t.bounty_pool.0)
            .sum();
        let g = &info.globals;
        assert_eq!(g.escrowed.0, owed, "escrow vs open and claimed tasks");
        assert_eq!(g.bounty_pools.0, pools, "bounty vault vs pools");
        let mut held = 0;
        for a in accounts {
            held += self.balance(*a).await.0;
        }
        assert_eq!(
            held + g.escrowed.0 + g.bounty_pools.0 + g.treasury.0,
            g.total_minted.0,
            "supply"
        );
    }
}

async fn submit(w: &Wallet<dyn Ledger>, node: Address) -> TaskId {
    w.submit(node, "m", "p", "{}", amount("2")).await.unwrap()
}

fn count(r: &TransactionResult, event: &str) -> usize {
    r.events
        .iter()
        .filter(|e| e.r#type.ends_with(event))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_receivers_and_collections_gain_nothing_and_block_nothing() {
    let Some(binary) = emulator_or_skip("the hostile-contract attacks") else {
        return;
    };
    let _one_at_a_time = EMULATOR_LOCK.lock().await;
    let emulator = Emulator::start(&binary).await;
    let config = LedgerConfig {
        claim_window_s: 30,
        fulfil_window_s: 6,
        bounty_window_s: 600,
        faucet_amount: Amount::tokens(1000),
    };
    let (ledger, _admin) = deploy_fresh(&emulator, &config).await;
    let mut suite = Suite {
        ledger,
        hostile: Address([0; 8]),
    };
    let alice = suite.account().await; // an honest requester
    let bob = suite.account().await; // another honest requester
    let mallory = suite.account().await; // a node with a re-entering receiver
    let mel = suite.account().await; // a node that submits to itself, re-entering collection
    let eve = suite.account().await; // a requester who refuses delivery and refunds
    let nora = suite.account().await; // an honest node
    let everyone: Vec<Address> = [&alice, &bob, &mallory, &mel, &eve, &nora]
        .iter()
        .map(|w| w.address())
        .collect();

    // An ordinary account deploys the hostile contract.
    suite.hostile = mallory.address();
    let code = suite
        .ledger
        .network()
        .resolve(&cadence("tests/attacks/contracts/FlowNetHostile.cdc"))
        .unwrap();
    suite
        .ledger
        .run_transaction(
            &cadence("tests/attacks/deploy_contract.cdc"),
            &[Value::string("FlowNetHostile"), Value::string(code)],
            mallory.address(),
        )
        .await
        .expect("an ordinary account deploys FlowNetHostile");

    let offer = |price: &str| {
        vec![OfferedModel {
            model_id: "m".into(),
            weights_sha256: flownet_core::crypto::sha256(b"weights"),
            price: amount(price),
            unit: flownet_core::PriceUnit::Task,
        }]
    };
    for node in [&mallory, &mel, &nora] {
        node.register_node("n", "http://127.0.0.1:7070", offer("2"))
            .await
            .unwrap();
    }

    // 1. A node whose published receiver re-enters fulfil while it is paid.
    let t1 = submit(&alice, mallory.address()).await;
    let t2 = submit(&bob, mallory.address()).await; // someone else's escrow
    mallory.claim(t1).await.unwrap();
    suite
        .install(
            mallory.address(),
            "install_hostile_receiver.cdc",
            "reentrant",
            t1,
        )
        .await;
    let before = suite.balance(mallory.address()).await;
    let refused = suite.fulfil(mallory.address(), t1).await;
    // Refused before any payment, for want of FlowNet's own receiver: not after
    // the hostile receiver ran (which would end in an emptied escrow instead).
    match &refused {
        Err(e) => assert_eq!(
            e.to_string(),
            format!("not found: account {}", mallory.address()),
            "a node whose receiver is not FlowNet's vault is not paid through it"
        ),
        Ok(r) => panic!("the hostile node was paid: {:?}", r.events),
    }
    assert_eq!(suite.balance(mallory.address()).await, before);
    assert_eq!(
        suite.ledger.task(t1).await.unwrap().unwrap().status,
        TaskStatus::Claimed
    );
    suite.assert_books_balance(&everyone).await;

    // 1b. A node owner who submits to its own node, whose collection re-enters
    // fulfil while the record is delivered: fulfilled and paid once, the record
    // kept by the marketplace, the hostile collection never called.
    let t3 = submit(&mel, mel.address()).await;
    // mel installs FlowNetHostile's re-entering collection from mallory's contract.
    suite
        .install(
            mel.address(),
            "install_hostile_collection.cdc",
            "reentrant",
            t3,
        )
        .await;
    mel.claim(t3).await.unwrap();
    let before = suite.balance(mel.address()).await;
    let r = suite
        .fulfil(mel.address(), t3)
        .await
        .expect("a requester's collection cannot refuse or repeat delivery");
    assert_eq!(count(&r, ".TaskFulfilled"), 1, "one fulfilment");
    assert_eq!(count(&r, "FlowNetOutput.Minted"), 1, "one record");
    assert_eq!(count(&r, "FlowNetHostile.Called"), 0, "hostile code ran");
    assert_eq!(
        suite.balance(mel.address()).await,
        before.checked_add(amount("1.8")).unwrap()
    );
    let task = suite.ledger.task(t3).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Fulfilled);
    assert_eq!(task.bounty_pool, amount("0.15"));
    // A rating in between is not undone by a stale copy of the task.
    alice.rate(t3, 5).await.unwrap();
    assert_eq!(suite.ledger.task(t3).await.unwrap().unwrap().bounty_paid, 1);
    suite.assert_books_balance(&everyone).await;

    // 2. A requester whose collection panics cannot refuse delivery: the node is
    // paid, the record waits in the marketplace until the requester collects it.
    let t4 = submit(&eve, nora.address()).await;
    suite
        .install(
            eve.address(),
            "install_hostile_collection.cdc",
            "panicking",
            t4,
        )
        .await;
    nora.claim(t4).await.unwrap();
    let before = suite.balance(nora.address()).await;
    let r = suite
        .fulfil(nora.address(), t4)
        .await
        .expect("a panicking collection cannot block the node's payment");
    assert_eq!(count(&r, ".TaskFulfilled"), 1);
    assert_eq!(count(&r, "FlowNetHostile.Called"), 0);
    assert_eq!(
        suite.balance(nora.address()).await,
        before.checked_add(amount("1.8")).unwrap()
    );
    // The requester takes the record into FlowNet's own collection later.
    let r = suite
        .ledger
        .run_transaction(
            &cadence("transactions/collect_outputs.cdc"),
            &[],
            eve.address(),
        )
        .await
        .expect("the requester collects what the marketplace kept");
    assert_eq!(count(&r, "FlowNetHostile.Called"), 0);
    suite.assert_books_balance(&everyone).await;

    // 2b. A node whose receiver panics blocks only its own payment; a requester
    // whose receiver panics blocks only its own refund. Nobody else's task
    // stops settling.
    let t5 = submit(&eve, nora.address()).await;
    suite
        .install(
            eve.address(),
            "install_hostile_receiver.cdc",
            "panicking",
            0,
        )
        .await;
    nora.claim(t5).await.unwrap();
    let r = suite
        .fulfil(nora.address(), t5)
        .await
        .expect("the requester's receiver plays no part in the node's payment");
    assert_eq!(count(&r, "FlowNetHostile.Called"), 0);

    // eve's next task is claimed and never delivered: its refund (below) cannot go
    // through her hostile receiver, and nothing else is held up by that.
    let t6 = submit(&eve, nora.address()).await;
    nora.claim(t6).await.unwrap();

    // The honest requesters' tasks with mallory still settle: t2 is cancelled,
    // t1 expires after its fulfil deadline and alice has her 2 back.
    bob.cancel(t2).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(config.fulfil_window_s + 2)).await;
    // A block stamped after the wait.
    nora.transfer(alice.address(), amount("0.00000001"))
        .await
        .unwrap();
    let alice_before = suite.balance(alice.address()).await;
    let receipt = bob.expire(t1).await.expect("t1 expires");
    assert_eq!(receipt.outcome.credited, None, "bob is not the requester");
    assert_eq!(
        suite.balance(alice.address()).await,
        alice_before.checked_add(amount("2")).unwrap()
    );
    let refused = bob
        .expire(t6)
        .await
        .expect_err("eve's receiver is not FlowNet's");
    assert_eq!(
        refused.to_string(),
        format!("not found: account {}", eve.address())
    );
    assert_eq!(
        suite.ledger.task(t6).await.unwrap().unwrap().status,
        TaskStatus::Claimed,
        "the escrow keeps eve's tokens until she can take them"
    );
    let refused = alice
        .transfer(eve.address(), amount("1"))
        .await
        .expect_err("no transfer runs eve's receiver");
    assert!(
        refused.to_string().starts_with("not found: account"),
        "{refused}"
    );
    let node = suite.ledger.node(mallory.address()).await.unwrap().unwrap();
    assert_eq!((node.stats.fulfilled, node.stats.missed), (0, 1));
    suite.assert_books_balance(&everyone).await;
}
