//! `flownet ledger verify`: a clean ledger file verifies; one whose balance was edited
//! outside the ledger's code is refused by every command and named by verify.

use crate::support::Flownet;

#[test]
fn ledger_verify_names_a_balance_edited_in_the_file() {
    let f = Flownet::new();
    f.json("node", &["init"]);
    let alice = f.json("alice", &["init"]);
    let alice = alice["address"].as_str().unwrap().to_owned();
    let node = f.json("node", &["account", "show"])["address"]
        .as_str()
        .unwrap()
        .to_owned();
    f.json("alice", &["account", "transfer", &node, "5"]);
    // A rejected envelope is part of the log too.
    let (kind, _) = f.fails("alice", &["account", "transfer", &node, "1000000"]);
    assert_eq!(kind, "insufficient_funds");

    let report = f.json("alice", &["ledger", "verify"]);
    assert_eq!(report["ok"], true, "{report}");
    // Two creates, two faucets, a transfer and the rejected one.
    assert_eq!(report["envelopes"], 6, "{report}");
    assert!(report["mismatch"].is_null(), "{report}");
    let text = f.run("alice", &["ledger", "verify"]);
    assert!(text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("6 envelopes replayed"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Alice gives herself a million tokens in the file itself.
    let db = rusqlite::Connection::open(f.dir.path().join("ledger.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE accounts SET data = json_set(data, '$.balance', 100000000000000) WHERE address = ?1",
            [&alice],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    // Every command that opens the ledger refuses it, with the kind of a storage error.
    let (kind, msg) = f.fails("alice", &["account", "balance"]);
    assert_eq!(kind, "storage");
    assert!(
        msg.contains("ledger state does not match its log")
            && msg.contains("flownet ledger verify"),
        "{msg}"
    );

    // Verify exits 1 with one JSON object naming the row.
    let (kind, msg) = f.fails("alice", &["ledger", "verify"]);
    assert_eq!(kind, "storage");
    assert!(msg.contains(&format!("accounts row {alice}")), "{msg}");
    let out = f
        .cmd("alice")
        .args(["--json", "ledger", "verify"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["error"]["mismatch"];
    assert_eq!(
        (m["at"].as_str(), m["table"].as_str()),
        (Some("row"), Some("accounts")),
        "{v}"
    );
    assert_eq!(m["key"], alice.as_str(), "{v}");
    assert!(
        m["stored"][1].as_str().unwrap().contains("100000000000000"),
        "{v}"
    );
}
