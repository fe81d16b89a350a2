use std::sync::Arc;

use flownet_chain::{EmbeddedLedger, ManualClock};
use flownet_core::{
    Action, Amount, Digest32, Envelope, ErrorKind, Ledger, LedgerConfig, OfferedModel, OutputRef,
    SigningKey, TaskQuery, TaskStatus, Wallet,
};

fn ledger_with_clock(dir: &tempfile::TempDir) -> (Arc<EmbeddedLedger>, Arc<ManualClock>) {
    let path = dir.path().join("ledger.db");
    EmbeddedLedger::create(&path, LedgerConfig::default()).unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    (
        Arc::new(EmbeddedLedger::open_with_clock(&path, clock.clone()).unwrap()),
        clock,
    )
}

fn offer(price: Amount) -> Vec<OfferedModel> {
    vec![OfferedModel {
        model_id: "m".into(),
        weights_sha256: Digest32([3; 32]),
        price,
        unit: flownet_core::PriceUnit::Task,
    }]
}

fn output() -> OutputRef {
    OutputRef {
        sha256: Digest32([4; 32]),
        uri: "http://n/blobs/04".into(),
        mime: "image/png".into(),
        size: 10,
    }
}

#[tokio::test]
async fn the_full_lifecycle_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = ledger_with_clock(&dir);
    let node = Wallet::new(ledger.clone(), SigningKey::generate());
    let user = Wallet::new(ledger.clone(), SigningKey::generate());
    node.ensure_funded().await.unwrap();
    user.ensure_funded().await.unwrap();
    node.register_node("n", "http://n", offer(Amount::tokens(2)))
        .await
        .unwrap();
    let id = user
        .submit(
            node.address(),
            "m",
            "a prompt",
            "{\"seed\": 1}",
            Amount::tokens(2),
        )
        .await
        .unwrap();
    node.claim(id).await.unwrap();
    let r = node.fulfil(id, output()).await.unwrap();
    assert_eq!(r.outcome.credited, Some(Amount(180_000_000)));
    user.rate(id, 5).await.unwrap();

    let reopened = EmbeddedLedger::open(ledger.path()).unwrap();
    assert_eq!(reopened.id(), ledger.id());
    let task = reopened.task(id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Fulfilled);
    assert_eq!(task.result, Some(output()));
    let nfts = reopened.nfts(user.address()).await.unwrap();
    assert_eq!(nfts.len(), 1);
    assert_eq!(nfts[0].prompt, "a prompt");
    assert_eq!(reopened.ratings(id).await.unwrap().len(), 1);
    let n = reopened.node(node.address()).await.unwrap().unwrap();
    assert_eq!(
        (
            n.stats.fulfilled,
            n.stats.ratings_count,
            n.stats.ratings_sum
        ),
        (1, 1, 5)
    );
    let info = reopened.info().await.unwrap();
    let g = info.globals;
    let mut balances = 0;
    for a in [node.address(), user.address()] {
        balances += reopened.account(a).await.unwrap().unwrap().balance.0;
    }
    assert_eq!(
        balances + g.escrowed.0 + g.bounty_pools.0 + g.treasury.0,
        g.total_minted.0
    );
    // Two creates, two faucets, register, submit, claim, fulfil, rate: 9 envelopes.
    assert_eq!(info.height, 9);
    let feed = reopened.envelopes_since(6, 100).await.unwrap();
    assert_eq!(
        feed.iter()
            .map(|e| e.envelope.envelope.action.name())
            .collect::<Vec<_>>(),
        ["claim", "fulfil", "rate"]
    );
}

#[tokio::test]
async fn replays_forgeries_and_foreign_envelopes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = ledger_with_clock(&dir);
    let alice = Wallet::new(ledger.clone(), SigningKey::generate());
    let bob = Wallet::new(ledger.clone(), SigningKey::generate());
    alice.ensure_funded().await.unwrap();
    bob.ensure_funded().await.unwrap();
    let seq = ledger
        .account(alice.address())
        .await
        .unwrap()
        .unwrap()
        .sequence;
    let env = Envelope {
        ledger: ledger.id(),
        signer: alice.address(),
        sequence: seq,
        action: Action::Transfer {
            to: bob.address(),
            amount: Amount(5),
        },
    };
    let forged = env.clone().sign(bob.key());
    assert_eq!(
        ledger.send(forged).await.unwrap_err().kind(),
        ErrorKind::BadSignature
    );
    let good = env.sign(alice.key());
    ledger.send(good.clone()).await.unwrap();
    assert_eq!(
        ledger.send(good).await.unwrap_err().kind(),
        ErrorKind::BadSequence
    );
    let other_dir = tempfile::tempdir().unwrap();
    let (other, _) = ledger_with_clock(&other_dir);
    assert_ne!(other.id(), ledger.id());
    let foreign = Envelope {
        ledger: other.id(),
        signer: alice.address(),
        sequence: seq + 1,
        action: Action::Faucet,
    }
    .sign(alice.key());
    assert_eq!(
        ledger.send(foreign).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        ledger
            .account(bob.address())
            .await
            .unwrap()
            .unwrap()
            .balance,
        Amount::tokens(1000).checked_add(Amount(5)).unwrap()
    );
}

#[tokio::test]
async fn a_rejection_is_recorded_and_changes_no_balance() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = ledger_with_clock(&dir);
    let alice = Wallet::new(ledger.clone(), SigningKey::generate());
    alice.ensure_funded().await.unwrap();
    let before = ledger.account(alice.address()).await.unwrap().unwrap();
    let err = alice
        .transfer(alice.address(), Amount::tokens(5000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsufficientFunds);
    let after = ledger.account(alice.address()).await.unwrap().unwrap();
    assert_eq!(after.balance, before.balance);
    assert_eq!(after.sequence, before.sequence + 1);
    let last = ledger.envelopes_since(0, 100).await.unwrap().pop().unwrap();
    assert!(last.error.unwrap().contains("insufficient funds"));
}

#[tokio::test]
async fn deadlines_follow_the_ledger_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, clock) = ledger_with_clock(&dir);
    let node = Wallet::new(ledger.clone(), SigningKey::generate());
    let user = Wallet::new(ledger.clone(), SigningKey::generate());
    node.ensure_funded().await.unwrap();
    user.ensure_funded().await.unwrap();
    node.register_node("n", "http://n", offer(Amount::tokens(1)))
        .await
        .unwrap();
    let id = user
        .submit(node.address(), "m", "p", "{}", Amount::tokens(1))
        .await
        .unwrap();
    assert_eq!(
        user.expire(id).await.unwrap_err().kind(),
        ErrorKind::DeadlineNotPassed
    );
    clock.advance(301);
    assert_eq!(
        node.claim(id).await.unwrap_err().kind(),
        ErrorKind::DeadlinePassed
    );
    user.expire(id).await.unwrap();
    let open = ledger
        .tasks(TaskQuery {
            node: Some(node.address()),
            status: Some(TaskStatus::Open),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(open.is_empty());
    let expired = ledger
        .tasks(TaskQuery {
            requester: Some(user.address()),
            status: Some(TaskStatus::Expired),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
}

#[tokio::test]
async fn two_handles_on_one_file_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = Arc::new(EmbeddedLedger::create(&path, LedgerConfig::default()).unwrap());
    let b = Arc::new(EmbeddedLedger::open(&path).unwrap());
    let wa = Arc::new(Wallet::new(a.clone(), SigningKey::generate()));
    let wb = Arc::new(Wallet::new(b.clone(), SigningKey::generate()));
    wa.ensure_funded().await.unwrap();
    wb.ensure_funded().await.unwrap();
    // Interleaved writers on two connections: every transfer lands exactly once.
    let mut handles = Vec::new();
    for (from, to) in [(wa.clone(), wb.address()), (wb.clone(), wa.address())] {
        handles.push(tokio::spawn(async move {
            for _ in 0..25 {
                from.transfer(to, Amount(1)).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(a.account(wb.address()).await.unwrap().unwrap().sequence, 27);
    assert_eq!(
        b.account(wa.address()).await.unwrap().unwrap().balance,
        Amount::tokens(1000)
    );
}

#[tokio::test]
async fn waiters_wake_when_an_envelope_is_applied_through_any_handle_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wake.db");
    let a = Arc::new(EmbeddedLedger::create(&path, LedgerConfig::default()).unwrap());
    let b = Arc::new(EmbeddedLedger::open(&path).unwrap());
    let wallet = Wallet::new(a.clone(), SigningKey::generate());
    let short = std::time::Duration::from_millis(200);
    // Nothing applied: nothing wakes.
    let idle = b.changed();
    assert!(tokio::time::timeout(short, idle).await.is_err());
    // An envelope sent through one handle wakes waiters on both.
    let (on_a, on_b) = (a.changed(), b.changed());
    wallet.ensure_funded().await.unwrap();
    tokio::time::timeout(short, on_a).await.expect("a wakes");
    tokio::time::timeout(short, on_b).await.expect("b wakes");
    // A refused envelope changes nothing and wakes nobody.
    let after = b.changed();
    assert!(
        wallet
            .transfer(wallet.address(), Amount::tokens(1_000_000))
            .await
            .is_err()
    );
    assert!(tokio::time::timeout(short, after).await.is_err());
}

#[test]
fn opening_a_missing_or_foreign_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = EmbeddedLedger::open(dir.path().join("nope.db"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no ledger at"), "{err}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not sqlite, just some bytes that go on for a while....................................").unwrap();
    assert!(EmbeddedLedger::open(&junk).is_err());
    let path = dir.path().join("l.db");
    EmbeddedLedger::create(&path, LedgerConfig::default()).unwrap();
    assert!(
        EmbeddedLedger::create(&path, LedgerConfig::default())
            .unwrap_err()
            .to_string()
            .contains("already holds")
    );
}

#[tokio::test]
async fn task_counts_by_status_match_the_task_lists() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = ledger_with_clock(&dir);
    let node = Wallet::new(ledger.clone(), SigningKey::generate());
    let user = Wallet::new(ledger.clone(), SigningKey::generate());
    node.ensure_funded().await.unwrap();
    user.ensure_funded().await.unwrap();
    node.register_node("n", "http://n", offer(Amount::tokens(1)))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = user
            .submit(
                node.address(),
                "m",
                &format!("p{i}"),
                "{}",
                Amount::tokens(1),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    node.claim(ids[0]).await.unwrap();
    node.fulfil(ids[0], output()).await.unwrap();
    node.claim(ids[1]).await.unwrap();
    user.cancel(ids[2]).await.unwrap();
    let counts = ledger.task_counts().await.unwrap();
    assert_eq!(counts.len(), TaskStatus::ALL.len());
    for (status, n) in counts {
        let listed = ledger
            .tasks(flownet_core::TaskQuery {
                status: Some(status),
                ..Default::default()
            })
            .await
            .unwrap()
            .len() as u64;
        assert_eq!(n, listed, "{status:?}");
    }
    assert_eq!(
        ledger.task_counts().await.unwrap(),
        [
            (TaskStatus::Open, 2),
            (TaskStatus::Claimed, 1),
            (TaskStatus::Fulfilled, 1),
            (TaskStatus::Cancelled, 1),
            (TaskStatus::Expired, 0),
            (TaskStatus::Declined, 0),
        ]
    );
}
