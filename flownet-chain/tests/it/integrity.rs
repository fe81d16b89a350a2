//! The ledger file's promise of integrity: edits made outside the ledger's code are
//! refused on open and named by `EmbeddedLedger::verify`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use flownet_chain::{EmbeddedLedger, Error, ManualClock, Mismatch};
use flownet_core::{
    Account, Address, Amount, Digest32, ErrorKind, LedgerConfig, OfferedModel, OutputRef,
    SigningKey, TaskId, Wallet,
};

/// A ledger file after a whole task's life and one rejection: two creates, two
/// faucets, register, submit, claim, fulfil, rate, and a second rating (rejected).
struct Market {
    _dir: tempfile::TempDir,
    path: PathBuf,
    node: Address,
    user: Address,
    task: TaskId,
}

const ENVELOPES: u64 = 10;

async fn market() -> Market {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    EmbeddedLedger::create(&path, LedgerConfig::default()).unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let ledger = Arc::new(EmbeddedLedger::open_with_clock(&path, clock.clone()).unwrap());
    let node = Wallet::new(ledger.clone(), SigningKey::generate());
    let user = Wallet::new(ledger.clone(), SigningKey::generate());
    node.ensure_funded().await.unwrap();
    user.ensure_funded().await.unwrap();
    node.register_node(
        "n",
        "http://n",
        vec![OfferedModel {
            model_id: "m".into(),
            weights_sha256: Digest32([3; 32]),
            price: Amount::tokens(2),
            unit: flownet_core::PriceUnit::Task,
        }],
    )
    .await
    .unwrap();
    clock.advance(5);
    let task = user
        .submit(node.address(), "m", "a prompt", "{}", Amount::tokens(2))
        .await
        .unwrap();
    clock.advance(5);
    node.claim(task).await.unwrap();
    clock.advance(5);
    node.fulfil(
        task,
        OutputRef {
            sha256: Digest32([4; 32]),
            uri: "http://n/blobs/04".into(),
            mime: "image/png".into(),
            size: 10,
        },
    )
    .await
    .unwrap();
    user.rate(task, 5).await.unwrap();
    let again = user.rate(task, 4).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyRated);
    Market {
        path,
        node: node.address(),
        user: user.address(),
        task,
        _dir: dir,
    }
}

fn sql(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn mismatch(path: &Path) -> Mismatch {
    let report = EmbeddedLedger::verify(path).unwrap();
    assert!(!report.ok, "{report:?}");
    report.mismatch.unwrap()
}

fn envelope_at(m: &Mismatch) -> (u64, &str, &str) {
    match m {
        Mismatch::Envelope {
            height,
            action,
            reason,
            ..
        } => (*height, action, reason),
        other => panic!("expected an envelope, got {other:?}"),
    }
}

#[tokio::test]
async fn a_clean_log_verifies_and_reopens() {
    let m = market().await;
    let report = EmbeddedLedger::verify(&m.path).unwrap();
    assert!(report.ok, "{:?}", report.mismatch);
    assert_eq!((report.envelopes, report.genesis_height), (ENVELOPES, 0));
    // meta (3), two accounts, a node, a task, a rating, an NFT.
    assert_eq!(report.rows, 9);

    // Reopened after a clean close, it takes more envelopes, and still verifies.
    let ledger = Arc::new(EmbeddedLedger::open(&m.path).unwrap());
    let third = Wallet::new(ledger.clone(), SigningKey::generate());
    third.ensure_funded().await.unwrap();
    third.transfer(m.user, Amount::tokens(1)).await.unwrap();
    drop((third, ledger));
    EmbeddedLedger::open(&m.path).unwrap();
    let again = EmbeddedLedger::verify(&m.path)
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(again.envelopes, ENVELOPES + 3);
    assert_ne!(again.chain, report.chain);
}

#[tokio::test]
async fn an_edited_balance_is_refused_on_open_and_named_by_verify() {
    let m = market().await;
    let c = sql(&m.path);
    let data: String = c
        .query_row(
            "SELECT data FROM accounts WHERE address = ?1",
            [m.user.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    let mut account: Account = serde_json::from_str(&data).unwrap();
    account.balance = Amount::tokens(1_000_000);
    c.execute(
        "UPDATE accounts SET data = ?1 WHERE address = ?2",
        [serde_json::to_string(&account).unwrap(), m.user.to_string()],
    )
    .unwrap();
    drop(c);

    let err = EmbeddedLedger::open(&m.path).unwrap_err();
    assert!(matches!(err, Error::Tampered(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("ledger state does not match its log")
            && msg.contains("flownet ledger verify"),
        "{msg}"
    );
    // Through the port it is a storage error like any unreadable file.
    assert_eq!(flownet_core::Error::from(err).kind(), ErrorKind::Storage);

    // The log itself is intact: the replay gets to the end and names the row.
    let report = EmbeddedLedger::verify(&m.path).unwrap();
    assert_eq!(report.envelopes, ENVELOPES);
    match report.mismatch.clone().unwrap() {
        Mismatch::Row {
            table,
            key,
            stored,
            replayed,
        } => {
            assert_eq!((table.as_str(), key), ("accounts", m.user.to_string()));
            assert!(stored.unwrap()[1].contains("100000000000000"));
            assert!(!replayed.unwrap()[1].contains("100000000000000"));
        }
        other => panic!("expected the accounts row, got {other:?}"),
    }
    let err = report.into_result().unwrap_err().to_string();
    assert!(err.contains(&format!("accounts row {}", m.user)), "{err}");
}

#[tokio::test]
async fn a_column_beside_the_record_is_state_too() {
    let m = market().await;
    sql(&m.path)
        .execute(
            "UPDATE tasks SET status = 'submitted' WHERE id = ?1",
            [m.task as i64],
        )
        .unwrap();
    assert!(matches!(
        EmbeddedLedger::open(&m.path),
        Err(Error::Tampered(_))
    ));
    match mismatch(&m.path) {
        Mismatch::Row { table, key, .. } => {
            assert_eq!((table.as_str(), key), ("tasks", m.task.to_string()))
        }
        other => panic!("expected the tasks row, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tampered_envelope_is_named() {
    // Its stored digest: the file still opens (only the head is checked then), verify
    // names it.
    let m = market().await;
    sql(&m.path)
        .execute(
            "UPDATE envelopes SET state = ?1 WHERE height = 6",
            [Digest32([9; 32]).to_hex()],
        )
        .unwrap();
    EmbeddedLedger::open(&m.path).unwrap();
    let found = mismatch(&m.path);
    let (height, action, reason) = envelope_at(&found);
    assert_eq!((height, action), (6, "submit"));
    assert!(reason.contains("state digest"), "{reason}");

    // Its payload: another prompt under the same hash and signature.
    let m = market().await;
    let c = sql(&m.path);
    let env: String = c
        .query_row("SELECT envelope FROM envelopes WHERE height = 6", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(env.contains("a prompt"));
    c.execute(
        "UPDATE envelopes SET envelope = ?1 WHERE height = 6",
        [env.replace("a prompt", "another prompt")],
    )
    .unwrap();
    let found = mismatch(&m.path);
    let (height, _, reason) = envelope_at(&found);
    assert_eq!(height, 6);
    assert!(reason.contains("recorded hash"), "{reason}");
    assert!(
        found.to_string().contains(&m.user.to_string()),
        "the signer is named: {found}"
    );

    // Its time, for an action whose effects do not depend on it: the chain covers it.
    let m = market().await;
    sql(&m.path)
        .execute("UPDATE envelopes SET at = at + 1 WHERE height = 3", [])
        .unwrap();
    let found = mismatch(&m.path);
    let (height, action, reason) = envelope_at(&found);
    assert_eq!((height, action), (3, "create_account"));
    assert!(reason.contains("chain link"), "{reason}");

    // A whole envelope removed from the middle of the log.
    let m = market().await;
    sql(&m.path)
        .execute("DELETE FROM envelopes WHERE height = 5", [])
        .unwrap();
    let found = mismatch(&m.path);
    let (height, _, reason) = envelope_at(&found);
    assert_eq!(height, 6);
    assert!(reason.contains("missing"), "{reason}");

    // The last one: the head no longer is the last envelope, which opening sees.
    let m = market().await;
    sql(&m.path)
        .execute(
            "DELETE FROM envelopes WHERE height = ?1",
            [ENVELOPES as i64],
        )
        .unwrap();
    let err = EmbeddedLedger::open(&m.path).unwrap_err().to_string();
    assert!(err.contains("is not its last envelope"), "{err}");
    assert!(matches!(mismatch(&m.path), Mismatch::Head { .. }));
}

#[tokio::test]
async fn a_rejected_envelope_is_a_link_of_the_chain() {
    let m = market().await;
    let c = sql(&m.path);
    let (error, state, chain): (Option<String>, Option<String>, Option<String>) = c
        .query_row(
            "SELECT error, state, chain FROM envelopes WHERE height = ?1",
            [ENVELOPES as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(error.unwrap().contains("already rated"));
    assert!(state.is_some() && chain.is_some());

    // Recorded as accepted instead.
    c.execute(
        "UPDATE envelopes SET error = NULL WHERE height = ?1",
        [ENVELOPES as i64],
    )
    .unwrap();
    let found = mismatch(&m.path);
    let (height, action, reason) = envelope_at(&found);
    assert_eq!((height, action), (ENVELOPES, "rate"));
    assert!(reason.contains("recorded as accepted"), "{reason}");
}

#[tokio::test]
async fn a_file_of_schema_1_is_migrated_and_its_history_still_replayed() {
    let m = market().await;
    // Make it what version 1 wrote: no digests, no chain, and an account record from
    // before `hash_algo` existed.
    let c = sql(&m.path);
    c.execute_batch(
        "ALTER TABLE envelopes DROP COLUMN state; ALTER TABLE envelopes DROP COLUMN chain;
         DELETE FROM meta WHERE key IN ('head', 'genesis');
         UPDATE meta SET value = '1' WHERE key = 'schema_version';",
    )
    .unwrap();
    c.execute(
        "UPDATE accounts SET data = json_remove(data, '$.hash_algo') WHERE address = ?1",
        [m.node.to_string()],
    )
    .unwrap();
    drop(c);
    let err = EmbeddedLedger::verify(&m.path).unwrap_err().to_string();
    assert!(err.contains("schema 1") && err.contains("migrate"), "{err}");

    let ledger = Arc::new(EmbeddedLedger::open(&m.path).unwrap());
    let report = EmbeddedLedger::verify(&m.path).unwrap();
    assert!(report.ok, "{:?}", report.mismatch);
    assert_eq!(report.genesis_height, ENVELOPES);
    let third = Wallet::new(ledger.clone(), SigningKey::generate());
    third.ensure_funded().await.unwrap();
    drop((third, ledger));
    let report = EmbeddedLedger::open(&m.path)
        .and_then(|_| EmbeddedLedger::verify(&m.path))
        .unwrap();
    assert!(report.ok, "{:?}", report.mismatch);
    assert_eq!(report.envelopes, ENVELOPES + 2);

    // The history before the chain is still replayed: a payload edited there is named.
    let c = sql(&m.path);
    let env: String = c
        .query_row("SELECT envelope FROM envelopes WHERE height = 6", [], |r| {
            r.get(0)
        })
        .unwrap();
    c.execute(
        "UPDATE envelopes SET envelope = ?1 WHERE height = 6",
        [env.replace("a prompt", "another prompt")],
    )
    .unwrap();
    assert_eq!(envelope_at(&mismatch(&m.path)).0, 6);
}
