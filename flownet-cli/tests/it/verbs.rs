use crate::support::{Flownet, free_port};

#[test]
fn commands_without_a_ledger_or_key_say_what_to_do() {
    let f = Flownet::new();
    let out = f.run("alice", &["account", "balance"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flownet init"), "{stderr}");
    f.json("alice", &["ledger", "init"]);
    let (_, msg) = f.fails("bob", &["account", "balance"]);
    assert!(msg.contains("no key named \"bob\""), "{msg}");
    // An IPFS API that is not one is refused before anything runs.
    let (_, msg) = f.fails(
        "alice",
        &["--ipfs-api", "127.0.0.1:5001", "account", "balance"],
    );
    assert!(
        msg.contains("--ipfs-api must be an http://host:port URL"),
        "{msg}"
    );
    let out = f.run("alice", &["rate", "1", "9"]);
    assert_eq!(out.status.code(), Some(2), "a usage error exits 2");
    // Under --json every error is one JSON object with a kind, usage errors included.
    for args in [
        &["rate", "1", "0"][..],
        &["rate", "1", "6"],
        &["account", "transfer", "0x0000000000000001", "-1"],
        &["account", "transfer", "0x0000000000000001", "0.123456789"],
    ] {
        let out = f.cmd("alice").arg("--json").args(args).output().unwrap();
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let kind = v["error"]["kind"].as_str().unwrap_or_default();
        assert!(!kind.is_empty(), "{args:?}: {v}");
        assert!(
            !v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{v}"
        );
    }
    // An error no core rule names still has a kind.
    let out = f
        .cmd("alice")
        .arg("--json")
        .args(["task", "show", "99"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"]["kind"].is_string(), "{v}");
}

#[test]
fn rejections_come_back_typed() {
    let f = Flownet::new();
    f.json(
        "admin",
        &["ledger", "init", "--faucet", "0", "--claim-window", "1"],
    );
    f.json("node", &["account", "create"]);
    f.json("alice", &["account", "create"]);
    let (kind, _) = f.fails("alice", &["account", "faucet"]);
    assert_eq!(kind, "faucet");
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    f.json(
        "node",
        &[
            "node",
            "register",
            "--name",
            "n",
            "--endpoint",
            &endpoint,
            "--model",
            "terrain-diffusion-128=0.5",
        ],
    );
    let (kind, msg) = f.fails(
        "alice",
        &["task", "submit", "--model", "terrain-diffusion-128", "hi"],
    );
    assert_eq!(kind, "insufficient_funds");
    assert!(msg.contains("0.5 FLOWNET needed"), "{msg}");
    let (_, msg) = f.fails(
        "alice",
        &["task", "submit", "--model", "no-such-model", "hi"],
    );
    assert!(msg.contains("no active node offers model"), "{msg}");
    let (kind, _) = f.fails(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            "terrain-diffusion-128",
            "--max-price",
            "0.1",
            "hi",
        ],
    );
    assert_eq!(
        kind, "other",
        "picking a node is the CLI's refusal, not a rule's"
    );
    let (kind, _) = f.fails("alice", &["task", "show", "42"]);
    assert_eq!(kind, "not_found");
    let (_, msg) = f.fails(
        "node",
        &[
            "node",
            "register",
            "--name",
            "n",
            "--model",
            "terrain-diffusion-128=abc",
        ],
    );
    assert!(msg.contains("invalid amount"), "{msg}");
    let (_, msg) = f.fails(
        "node",
        &["node", "register", "--name", "n", "--model", "ghost=1"],
    );
    assert!(msg.contains("no model \"ghost\""), "{msg}");
}

#[test]
fn unclaimed_tasks_can_be_cancelled_or_expired_for_a_refund() {
    let f = Flownet::new();
    f.json("admin", &["ledger", "init", "--claim-window", "1"]);
    f.json("node", &["init"]);
    f.json("alice", &["init"]);
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    f.json(
        "node",
        &[
            "node",
            "register",
            "--name",
            "n",
            "--endpoint",
            &endpoint,
            "--model",
            "terrain-diffusion-128=2",
        ],
    );
    let t1 = f.json(
        "alice",
        &["task", "submit", "--model", "terrain-diffusion-128", "one"],
    )["task"]
        .to_string();
    let t2 = f.json(
        "alice",
        &["task", "submit", "--model", "terrain-diffusion-128", "two"],
    )["task"]
        .to_string();
    assert_eq!(f.json("alice", &["account", "balance"])["balance"], "996");
    let cancelled = f.json("alice", &["task", "cancel", &t1]);
    assert_eq!(cancelled["refunded"], "2");
    let (kind, _) = f.fails("node", &["task", "cancel", &t2]);
    assert_eq!(kind, "unauthorized");
    let (kind, _) = f.fails("alice", &["task", "expire", &t2]);
    assert_eq!(kind, "deadline_not_passed");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    f.json("node", &["task", "expire", &t2]);
    assert_eq!(f.json("alice", &["account", "balance"])["balance"], "1000");
    let listed = f.json("alice", &["task", "list"]);
    let statuses: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["cancelled", "expired"]);
    let out = f.run("alice", &["task", "wait", &t2, "--timeout", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("never claimed it") && err.contains("came back"),
        "{err}"
    );
    // A waiter whose task's deadline passes expires it itself: nobody runs `expire`.
    let t3 = f.json(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            "terrain-diffusion-128",
            "three",
        ],
    )["task"]
        .to_string();
    assert_eq!(f.json("alice", &["account", "balance"])["balance"], "998");
    let out = f.run("alice", &["task", "wait", &t3, "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("expired") && err.contains("escrow of 2 FLOWNET came back"),
        "{err}"
    );
    assert_eq!(f.json("alice", &["account", "balance"])["balance"], "1000");
    assert_eq!(f.json("alice", &["task", "show", &t3])["status"], "expired");
}

#[test]
fn what_the_model_cannot_take_is_refused_before_paying() {
    let f = Flownet::new();
    f.json("admin", &["ledger", "init"]);
    f.json("node", &["init"]);
    f.json("alice", &["init"]);
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    f.json(
        "node",
        &[
            "node",
            "register",
            "--name",
            "n",
            "--endpoint",
            &endpoint,
            "--model",
            "terrain-diffusion-128=2",
            "--model",
            "mobilenet-v2=1",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an image at all").unwrap();
    let (kind, msg) = f.fails(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            "mobilenet-v2",
            "--image",
            text.to_str().unwrap(),
        ],
    );
    assert_eq!(kind, "invalid_input", "{msg}");
    assert!(msg.contains("not an image"), "{msg}");
    let (kind, msg) = f.fails(
        "alice",
        &["task", "submit", "--model", "mobilenet-v2", "a cat"],
    );
    assert_eq!(kind, "invalid_input", "{msg}");
    let (kind, msg) = f.fails(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            "terrain-diffusion-128",
            "--image",
            text.to_str().unwrap(),
        ],
    );
    assert_eq!(kind, "invalid_input", "{msg}");
    assert!(msg.contains("takes no input"), "{msg}");
    assert_eq!(f.json("alice", &["account", "balance"])["balance"], "1000");
    // A node's owner declines a task by hand; the requester is refunded at once.
    let t = f.json(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            "terrain-diffusion-128",
            "hills",
        ],
    )["task"]
        .to_string();
    assert_eq!(f.json("alice", &["account", "balance"])["balance"], "998");
    let (kind, _) = f.fails("alice", &["task", "decline", &t, "--reason", "mine"]);
    assert_eq!(kind, "wrong_node");
    let (kind, _) = f.fails("node", &["task", "decline", &t, "--reason", " "]);
    assert_eq!(kind, "invalid_input");
    f.json(
        "node",
        &["task", "decline", &t, "--reason", "down for maintenance"],
    );
    assert_eq!(f.json("alice", &["account", "balance"])["balance"], "1000");
    let shown = f.json("alice", &["task", "show", &t]);
    assert_eq!(shown["status"], "declined");
    assert_eq!(shown["declined_reason"], "down for maintenance");
}

#[test]
fn the_demo_runs_the_whole_spine() {
    let f = Flownet::new();
    let demo_dir = f.dir.path().join("demo");
    let summary = f.json(
        "alice",
        &[
            "demo",
            "--dir",
            demo_dir.to_str().unwrap(),
            "--threads",
            "1",
        ],
    );
    let png = std::fs::read(summary["image"].as_str().unwrap()).unwrap();
    assert_eq!(summary["sha256"], crate::support::sha256_hex(&png));
    let decoded = image_size(&png);
    assert_eq!(decoded, (128, 128));
    // The image, the classification and the embeddings.
    assert_eq!(summary["node"]["fulfilled"], 3);
    assert_eq!(summary["node"]["ratings"], 1);
    assert_eq!(
        summary["classification"]["labels"][0]["label"],
        "Egyptian Mau"
    );
    let sim = &summary["embeddings"]["similarity"];
    assert!(
        sim["paraphrase"].as_f64().unwrap() > sim["unrelated"].as_f64().unwrap() + 0.3,
        "{summary}"
    );
    assert!(summary["embeddings"]["tokens"].as_u64().unwrap() > 3);
    assert_eq!(summary["nfts"].as_array().unwrap().len(), 3);
    // A second run starts fresh in the same dir.
    let again = f.json(
        "alice",
        &[
            "demo",
            "--dir",
            demo_dir.to_str().unwrap(),
            "--threads",
            "1",
        ],
    );
    assert_eq!(again["task"], 1);
    assert_eq!(
        again["sha256"], summary["sha256"],
        "same prompt, same image"
    );
    // It refuses to wipe a directory it did not make.
    let other = f.dir.path().join("precious");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "keep me").unwrap();
    let (_, msg) = f.fails("alice", &["demo", "--dir", other.to_str().unwrap()]);
    assert!(msg.contains("is not a demo dir"), "{msg}");
    assert!(other.join("notes.txt").exists());
}

/// Width and height from a PNG's IHDR chunk.
fn image_size(png: &[u8]) -> (u32, u32) {
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}
