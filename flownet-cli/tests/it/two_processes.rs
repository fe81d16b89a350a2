use crate::support::{Flownet, free_port, sha256_hex};

/// A node in one process and a user in others, on one ledger file: the user pays,
/// the node claims, runs the real models and is paid, the user rates.
#[test]
fn a_node_process_serves_a_user_process_on_one_ledger_file() {
    let f = Flownet::new();
    let node = f.json("node", &["init"]);
    let alice = f.json("alice", &["init"]);
    assert_eq!(alice["balance"], "1000");
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    f.json(
        "node",
        &[
            "node",
            "register",
            "--name",
            "it node",
            "--endpoint",
            &endpoint,
            "--model",
            "terrain-diffusion-128=0.5",
            "--model",
            "mobilenet-v2=0.1",
        ],
    );
    let _serving = f.spawn(
        "node",
        &["node", "serve", "--interval-ms", "100", "--threads", "1"],
    );

    let listed = f.json(
        "alice",
        &["node", "list", "--model", "terrain-diffusion-128"],
    );
    assert_eq!(listed[0]["owner"], node["address"]);

    // Text to image.
    let out_png = f.dir.path().join("mountains.png");
    let done = f.json(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            "terrain-diffusion-128",
            "--wait",
            "--out",
            out_png.to_str().unwrap(),
            "snowy mountains",
        ],
    );
    let png = std::fs::read(&out_png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    assert_eq!(done["sha256"], sha256_hex(&png));
    let task_id = done["task"].as_u64().unwrap();
    let shown = f.json("alice", &["task", "show", &task_id.to_string()]);
    assert_eq!(shown["status"], "fulfilled");
    assert_eq!(shown["result"]["sha256"], sha256_hex(&png));
    // Its IPFS CID, beside the hash it is made of: a raw block of that SHA-256.
    let cid = flownet_core::cid::raw_cid(&flownet_core::crypto::sha256(&png));
    assert!(cid.starts_with("bafkrei"));
    assert_eq!(done["cid"], cid);
    assert_eq!(shown["result"]["cid"], cid);
    // The node published the output at its endpoint, by content address.
    let uri = shown["result"]["uri"].as_str().unwrap();
    assert_eq!(uri, format!("{endpoint}/blobs/{}", sha256_hex(&png)));

    // Image classification of a real photo, sent by content address.
    let coffee = f.models.join("testdata/coffee.png");
    let labels_path = f.dir.path().join("coffee.json");
    f.json(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            "mobilenet-v2",
            "--image",
            coffee.to_str().unwrap(),
            "--wait",
            "--out",
            labels_path.to_str().unwrap(),
        ],
    );
    let labels: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&labels_path).unwrap()).unwrap();
    assert_eq!(labels["labels"][0]["label"], "espresso", "{labels}");

    // Rating: the payer's stars move the score and earn a bounty share.
    let rated = f.json("alice", &["rate", &task_id.to_string(), "5"]);
    assert_eq!(rated["bounty"], "0.0125");
    let (kind, _) = f.fails("alice", &["rate", &task_id.to_string(), "4"]);
    assert_eq!(kind, "already_rated");
    let (kind, _) = f.fails("node", &["rate", &task_id.to_string(), "5"]);
    assert_eq!(kind, "unauthorized");

    let status = f.json("node", &["node", "status"]);
    assert_eq!(status["fulfilled"], 2);
    assert_eq!(status["ratings"], 1);
    // (3 stars weighing 1 FLOWNET + 5 stars weighing the 0.5 paid) / 1.5
    assert!((status["score"].as_f64().unwrap() - 5.5 / 1.5).abs() < 1e-9);
    let earnings = f.json("node", &["node", "earnings"]);
    assert_eq!(earnings["earned"], "0.54");
    let nfts = f.json("alice", &["nft", "list"]);
    assert_eq!(nfts.as_array().unwrap().len(), 2);
    assert_eq!(nfts[0]["prompt"], "snowy mountains");
    assert_eq!(nfts[0]["output"]["sha256"], sha256_hex(&png));
    assert_eq!(nfts[0]["output"]["cid"], cid);
    let balance = f.json("alice", &["account", "balance"]);
    assert_eq!(balance["balance"], "999.4125");
    let info = f.json("alice", &["ledger", "info"]);
    let g = &info["globals"];
    assert_eq!(g["escrowed"], 0);
    assert_eq!(g["treasury"], 1_500_000);
}

/// The same prompt gives the same bytes from a fresh node process: outputs are
/// reproducible from what the NFT records.
#[test]
fn the_same_prompt_gives_the_same_png_across_processes() {
    let f = Flownet::new();
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
            "terrain-diffusion-128=1",
        ],
    );
    let mut shas = Vec::new();
    for _ in 0..2 {
        let submitted = f.json(
            "alice",
            &[
                "task",
                "submit",
                "--model",
                "terrain-diffusion-128",
                "--params",
                "{\"difficulty\": 70}",
                "rolling hills",
            ],
        );
        assert_eq!(submitted["price"], "1");
        // `--once` processes what is waiting and exits: a node run as a batch job.
        let out = f.json("node", &["node", "serve", "--once", "--threads", "1"]);
        assert_eq!(out["delivered"], 1);
        let shown = f.json("alice", &["task", "show", &submitted["task"].to_string()]);
        shas.push(shown["result"]["sha256"].as_str().unwrap().to_owned());
    }
    assert_eq!(shas[0], shas[1]);
}
