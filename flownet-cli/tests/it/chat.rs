//! The language model between two "machines": a node and a user with separate data
//! dirs (keys, blob stores) that reach one ledger file, in separate processes.

use std::{io::Write as _, process::Stdio};

use crate::support::Flownet;

const MODEL: &str = "smollm2-135m-instruct";

fn ask(user: &Flownet, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "task",
        "submit",
        "--model",
        MODEL,
        "--max-tokens",
        "16",
        "--params",
        r#"{"temperature": 0, "seed": 3}"#,
        "--wait",
    ];
    args.extend_from_slice(extra);
    user.json("alice", &args)
}

#[test]
fn a_user_machine_chats_with_a_node_machine_paid_per_token() {
    let (node, user) = Flownet::node_and_user("llm node", &format!("{MODEL}=0.2"));
    let serving = node.serve_node();

    // One question: 16 tokens escrowed at 0.2 per 1,000, the unused ones back.
    let done = ask(&user, &["What is the capital of France?"]);
    let text = done["text"].as_str().unwrap().to_owned();
    assert!(!text.is_empty(), "{done}");
    let units = done["units"].as_u64().unwrap();
    assert!(units > 0 && units <= 16, "{done}");
    assert_eq!(units, done["usage"]["completion_tokens"].as_u64().unwrap());
    // The user's machine has the model too: the count paid is recounted with its tokenizer.
    assert_eq!(done["units_check"]["result"], "matches", "{done}");
    assert_eq!(done["units_check"]["counted"], units);
    let task = user.json("alice", &["task", "show", &done["task"].to_string()]);
    assert_eq!(task["max_units"], 16);
    assert_eq!(task["units"], units);
    // Amounts in base units (1e-8): escrow 16 × 0.2 / 1000 = 0.0032.
    assert_eq!(task["price"], 320_000);
    assert_eq!(
        task["refunded"].as_u64().unwrap(),
        320_000 - units * 20_000,
        "{task}"
    );

    // A conversation too long for the ledger travels as an input blob held by the
    // user's machine: the node fetches it over HTTP and checks its hash.
    let long = "Tell me about mountains. ".repeat(250);
    let conversation = serde_json::json!({ "messages": [
        { "role": "system", "content": long },
        { "role": "user", "content": "Say hello." },
    ] });
    let file = user.dir.path().join("conversation.json");
    std::fs::write(&file, conversation.to_string()).unwrap();
    assert!(conversation.to_string().len() > 4096);
    let done = ask(&user, &["--input", file.to_str().unwrap()]);
    assert!(!done["text"].as_str().unwrap().is_empty(), "{done}");
    let shown = user.json("alice", &["task", "show", &done["task"].to_string()]);
    let input = &shown["input"];
    assert_eq!(
        input["size"].as_u64().unwrap(),
        conversation.to_string().len() as u64
    );
    assert!(
        input["uri"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{shown}"
    );
    // Nothing was shared on disk: the input is in the user's store, not the node's.
    let sha = input["sha256"].as_str().unwrap();
    let in_store = |f: &Flownet| {
        walk(&f.dir.path().join("blobs"))
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == sha))
    };
    assert!(in_store(&user));

    // `flownet chat` carries the conversation: two questions on stdin, two answers.
    let mut chat = user
        .cmd("alice")
        .args([
            "--json",
            "chat",
            "--model",
            MODEL,
            "--max-tokens",
            "12",
            "--params",
            r#"{"temperature": 0}"#,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    chat.stdin
        .take()
        .unwrap()
        .write_all(b"My name is Ada.\nWhat is my name?\n")
        .unwrap();
    let out = chat.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers.len(), 2, "{}", String::from_utf8_lossy(&out.stdout));
    let second = user.json("alice", &["task", "show", &answers[1]["task"].to_string()]);
    let prompt: serde_json::Value =
        serde_json::from_str(second["prompt"].as_str().unwrap()).unwrap();
    let messages = prompt["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{prompt}");
    assert_eq!(messages[0]["content"], "My name is Ada.");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], answers[0]["text"]);
    for a in &answers {
        let (cost, back): (f64, f64) = (
            a["cost"].as_str().unwrap().parse().unwrap(),
            a["refunded"].as_str().unwrap().parse().unwrap(),
        );
        let escrowed: f64 = a["escrowed"].as_str().unwrap().parse().unwrap();
        assert!((cost + back - escrowed).abs() < 1e-12, "{a}");
    }

    // Printed as a person sees it: the answer's text is on stdout.
    let out = user.run(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            MODEL,
            "--max-tokens",
            "16",
            "--params",
            r#"{"temperature": 0, "seed": 3}"#,
            "--wait",
            "What is the capital of France?",
        ],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(text.trim()),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Reproducible: a fresh node process gives the same bytes for the same task.
    drop(serving);
    let _serving = node.serve_node();
    let again = ask(&user, &["What is the capital of France?"]);
    assert_eq!(again["text"], text);
    assert_eq!(again["units"], units);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
