//! all-MiniLM-L6-v2 through the embedding pipeline, against the Python reference
//! (onnxruntime + numpy + tokenizers, `benches/python/embed_ref.py`) run here.

use flownet_core::{Embeddings, InferenceRequest, embedding::cosine};
use serde_json::{Value, json};

use crate::common::{self, MINILM};

fn embed(prompt: &str, params: Value) -> flownet_infer::Result<Embeddings> {
    let out = common::engine().infer_blocking(&common::request(MINILM, prompt, params))?;
    assert_eq!(out.mime, "application/json");
    Ok(Embeddings::from_bytes(&out.bytes).expect("the output is embedding JSON"))
}

fn batch(texts: &[&str]) -> Embeddings {
    embed(&json!({ "input": texts }).to_string(), json!({})).unwrap()
}

/// The Python reference's vectors and token counts for `texts`.
fn reference(texts: &[&str]) -> (Vec<Vec<f64>>, Vec<u64>) {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benches/python/embed_ref.py");
    let out = std::process::Command::new(common::python())
        .arg(&script)
        .arg("--models")
        .arg(common::models_dir())
        .arg("--texts")
        .arg(json!(texts).to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} {}: {e}; run scripts/setup.sh",
                common::python().display(),
                script.display()
            )
        });
    assert!(
        out.status.success(),
        "the reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let vectors = v["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    let tokens = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    (vectors, tokens)
}

fn cos64(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt()
        * b.iter().map(|x| x * x).sum::<f64>().sqrt())
}

const PAIRS: [&str; 8] = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
    "Shares dropped as investors panicked.",
    "Ein Hund läuft über die Wiese, und café au lait.",
    "Ünïcödé façade — naïve coöperation!",
    "한국어 문장과 中文句子 mixed in.",
    "short",
];

#[test]
fn vectors_and_similarities_match_the_python_reference() {
    let ours = batch(&PAIRS);
    let (theirs, tokens) = reference(&PAIRS);
    assert_eq!(ours.dimensions, 384);
    assert_eq!(ours.embeddings.len(), PAIRS.len());
    // The same tokenizer gives the same tokens, and the usage is their sum.
    assert_eq!(ours.tokens, tokens);
    assert_eq!(ours.usage.prompt_tokens, tokens.iter().sum::<u64>());
    for (i, (a, b)) in ours.embeddings.iter().zip(&theirs).enumerate() {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - y).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "text {i}: a component differs by {worst}");
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        assert!(
            (norm - 1.0).abs() < 1e-5,
            "text {i} has squared norm {norm}"
        );
    }
    for i in 0..PAIRS.len() {
        for j in i + 1..PAIRS.len() {
            let ours = cosine(&ours.embeddings[i], &ours.embeddings[j]);
            let theirs = cos64(&theirs[i], &theirs[j]);
            assert!(
                (ours - theirs).abs() < 1e-4,
                "cosine({i}, {j}): {ours} here, {theirs} in Python"
            );
        }
    }
}

#[test]
fn a_paraphrase_is_nearer_than_an_unrelated_sentence() {
    let e = batch(&PAIRS[..4]);
    let v = &e.embeddings;
    let guitar = cosine(&v[0], &v[1]);
    let market = cosine(&v[2], &v[3]);
    for unrelated in [
        cosine(&v[0], &v[2]),
        cosine(&v[0], &v[3]),
        cosine(&v[1], &v[2]),
    ] {
        assert!(guitar > unrelated + 0.3, "{guitar} vs {unrelated}");
        assert!(market > unrelated + 0.3, "{market} vs {unrelated}");
    }
}

#[test]
fn a_text_has_one_vector_whatever_it_is_batched_with() {
    let alone = embed("A man is playing a guitar.", json!({})).unwrap();
    assert_eq!(alone.embeddings.len(), 1);
    let long = "word ".repeat(80);
    let mixed = batch(&[&long, "A man is playing a guitar.", "x"]);
    let worst = alone.embeddings[0]
        .iter()
        .zip(&mixed.embeddings[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "batched with others it moved by {worst}");
    assert_eq!(alone.tokens[0], mixed.tokens[1]);
}

#[test]
fn long_texts_are_cut_at_256_tokens_and_say_so() {
    let long = "lorem ipsum dolor sit amet ".repeat(100);
    let e = batch(&[&long, "short text"]);
    assert_eq!(e.tokens[0], 256);
    assert_eq!(e.truncated, [true, false]);
    assert_eq!(e.usage.prompt_tokens, 256 + e.tokens[1]);
    // The escrow bound covers what was used.
    let texts = [long.clone(), "short text".to_owned()];
    assert!(flownet_core::embedding::max_units(&texts, Some(256)) >= e.usage.prompt_tokens);
}

#[test]
fn the_input_blob_is_read_like_the_prompt() {
    let source = json!({ "input": ["alpha beta", "gamma"] }).to_string();
    let request = InferenceRequest {
        input: Some(source.clone().into_bytes()),
        ..common::request(MINILM, "sha256:00", json!({}))
    };
    let out = common::engine().infer_blocking(&request).unwrap();
    assert_eq!(out.bytes, embed(&source, json!({})).unwrap().to_bytes());
    let err = common::engine()
        .infer_blocking(&InferenceRequest {
            input: Some(vec![0xff, 0xfe]),
            ..request
        })
        .unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn bad_inputs_and_an_exceeded_budget_are_refused() {
    let err = |prompt: &str, params: Value| embed(prompt, params).unwrap_err().to_string();
    assert!(err("", json!({})).contains("empty"));
    assert!(err(r#"{"input": []}"#, json!({})).contains("empty list"));
    assert!(err(r#"{"input": ["a", 7]}"#, json!({})).contains("input[1]"));
    // The task paid for 3 tokens; "hello world" is 4 with [CLS] and [SEP].
    let e = err("hello world", json!({"max_tokens": 3}));
    assert!(e.contains("4 tokens") && e.contains("at most 3"), "{e}");
    assert_eq!(
        embed("hello world", json!({"max_tokens": 4}))
            .unwrap()
            .tokens,
        [4]
    );
}
