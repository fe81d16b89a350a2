//! Text to speech between two "machines": a node serving Piper's joe voice and a user
//! with separate data dirs that reach one ledger file, paid per task.

use crate::support::Flownet;

const MODEL: &str = "piper-joe-medium";

#[test]
fn a_user_pays_a_node_to_speak_a_text_and_gets_a_wav() {
    let (node, user) = Flownet::node_and_user("speaker", &format!("{MODEL}=0.05"));
    let _serving = node.serve_node();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.wav");
    let done = user.json(
        "alice",
        &[
            "task",
            "submit",
            "--model",
            MODEL,
            "--wait",
            "--out",
            out.to_str().unwrap(),
            "Good morning. Your task was delivered.",
        ],
    );
    assert_eq!(done["status"], "fulfilled", "{done}");
    assert_eq!(done["mime"], "audio/wav", "{done}");
    let wav = std::fs::read(&out).unwrap();
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    let seconds = (wav.len() - 44) as f64 / 2.0 / 22_050.0;
    assert!((1.0..6.0).contains(&seconds), "{seconds} s");

    // Nothing to say is refused before anything is paid.
    let before = user.json("alice", &["account", "balance"]);
    let (kind, message) = user.fails("alice", &["task", "submit", "--model", MODEL, "   "]);
    assert_eq!(kind, "invalid_input", "{message}");
    assert!(message.contains("empty"), "{message}");
    assert_eq!(user.json("alice", &["account", "balance"]), before);
}
