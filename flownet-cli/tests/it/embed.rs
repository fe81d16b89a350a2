//! Embeddings between two "machines": a node serving all-MiniLM-L6-v2 and a user with
//! separate data dirs that reach one ledger file, paid per 1,000 tokens read.

use crate::support::Flownet;

const MODEL: &str = "all-minilm-l6-v2";

#[test]
fn a_user_embeds_texts_paid_per_token_read_with_the_rest_back() {
    let (node, user) = Flownet::node_and_user("embedder", &format!("{MODEL}=0.5"));
    let listed = user.json("alice", &["node", "list"]);
    assert!(listed.to_string().contains("thousand_tokens"), "{listed}");
    let _serving = node.serve_node();

    let texts = [
        "A man is playing a guitar.",
        "Someone strums a guitar.",
        "Stocks fell.",
    ];
    let prompt = serde_json::json!({ "input": texts }).to_string();
    let done = user.json(
        "alice",
        &["task", "submit", "--model", MODEL, "--wait", &prompt],
    );
    let e = &done["embeddings"];
    assert_eq!(e["count"], 3, "{done}");
    assert_eq!(e["dimensions"], 384);
    let tokens: u64 = e["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .sum();
    assert_eq!(done["units"].as_u64(), Some(tokens), "{done}");
    // The user's machine has the model: the tokens paid for are recounted.
    assert_eq!(done["units_check"]["result"], "matches", "{done}");
    let task = user.json("alice", &["task", "show", &done["task"].to_string()]);
    // Escrowed for each text's bytes plus 2 tokens, paid for what was read.
    let bound: u64 = texts.iter().map(|t| t.len() as u64 + 2).sum();
    assert_eq!(task["max_units"], bound);
    assert_eq!(task["price"].as_u64().unwrap(), bound * 50_000);
    assert_eq!(
        task["refunded"].as_u64().unwrap(),
        (bound - tokens) * 50_000,
        "{task}"
    );
    // The vectors are in the saved file, and the paraphrase is the nearer.
    let saved: flownet_core::Embeddings =
        serde_json::from_slice(&std::fs::read(done["path"].as_str().unwrap()).unwrap()).unwrap();
    let cos = |i: usize, j: usize| {
        flownet_core::embedding::cosine(&saved.embeddings[i], &saved.embeddings[j])
    };
    assert!(
        cos(0, 1) > cos(0, 2) + 0.3,
        "{} vs {}",
        cos(0, 1),
        cos(0, 2)
    );

    // An empty text is refused before anything is paid.
    let before = user.json("alice", &["account", "balance"]);
    let (kind, message) = user.fails(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            MODEL,
            r#"{"input": ["ok", " "]}"#,
        ],
    );
    assert_eq!(kind, "invalid_input");
    assert!(message.contains("input[1] is empty"), "{message}");
    assert_eq!(user.json("alice", &["account", "balance"]), before);
}
