//! Reading text in an image between two "machines": a node serving PP-OCRv4 and a
//! user with separate data dirs that reach one ledger file, paid per image.

use std::path::{Path, PathBuf};

use crate::support::Flownet;

const MODEL: &str = "pp-ocrv4";

/// The project's Python (`FLOWNET_PYTHON`, else the workspace's venv).
fn python() -> PathBuf {
    std::env::var_os("FLOWNET_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
            PathBuf::from,
        )
}

/// Renders `lines` (size, text) to a PNG at `path` with `benches/python/ocr_ref.py`.
fn render(path: &Path, lines: &[(u32, &str)]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benches/python/ocr_ref.py");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(script).arg("--render").arg(path);
    for (size, text) in lines {
        cmd.arg("--line").arg(format!("{size}:{text}"));
    }
    let out = cmd
        .output()
        .expect("running the project's Python (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_user_pays_a_node_to_read_an_image_and_a_blank_one_is_refunded() {
    let (node, user) = Flownet::node_and_user("reader", &format!("{MODEL}=0.25"));
    let listed = user.json("alice", &["node", "list"]);
    assert!(listed.to_string().contains(MODEL), "{listed}");
    let _serving = node.serve_node();

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.png");
    let lines = [
        (40, "Receipt 7731 from FlowNet"),
        (22, "two coffees, 4.60 EUR"),
    ];
    render(&page, &lines);
    let before = user.json("alice", &["account", "balance"]);
    let done = user.json(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            MODEL,
            "--image",
            page.to_str().unwrap(),
            "--wait",
        ],
    );
    assert_eq!(done["status"], "fulfilled", "{done}");
    assert_eq!(
        done["text"], "Receipt 7731 from FlowNet\ntwo coffees, 4.60 EUR",
        "{done}"
    );
    assert_eq!(done["lines"].as_array().map(Vec::len), Some(2), "{done}");
    let saved = flownet_core::ocr::Reading::from_bytes(
        &std::fs::read(done["path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(saved.text, done["text"].as_str().unwrap());
    let task = user.json("alice", &["task", "show", &done["task"].to_string()]);
    assert!(
        task["prompt"].as_str().unwrap().starts_with("sha256:"),
        "{task}"
    );
    assert_eq!(task["price"].as_u64(), Some(25_000_000), "{task}");

    // A file that is not an image is refused before anything is paid.
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "not an image").unwrap();
    let paid = user.json("alice", &["account", "balance"]);
    assert_ne!(paid, before);
    let (kind, message) = user.fails(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            MODEL,
            "--image",
            text_file.to_str().unwrap(),
        ],
    );
    assert_eq!(kind, "invalid_input", "{message}");
    assert_eq!(user.json("alice", &["account", "balance"]), paid);

    // An image with no text is paid for, declined by the node and refunded.
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_pixel(300, 120, image::Rgb([250, 250, 250]))
        .save(&blank)
        .unwrap();
    // (The command says on stderr that it serves the input first, so not `fails`.)
    let out = user
        .cmd("alice")
        .args(["--json", "task", "submit", "--model", MODEL, "--image"])
        .arg(&blank)
        .arg("--wait")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("no text"), "{message}");
    assert_eq!(user.json("alice", &["account", "balance"]), paid);
}
