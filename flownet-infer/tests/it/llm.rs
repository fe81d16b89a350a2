//! SmolLM2-135M-Instruct through llama.cpp: answers, reproducibility, stop strings,
//! limits, the stream and the checks made before running.

use std::{process::Command, sync::Mutex};

use flownet_core::{Engine, Error, FinishReason, Generation, GenerationFold, InferenceOutput};
use serde_json::{Value, json};

use crate::common::{self, SMOLLM2};

const FRANCE: &str = "What is the capital of France?";

/// The shared engine if it serves SmolLM2; `None` (with a loud message) when setup has
/// not made the GGUF file.
fn engine() -> Option<&'static flownet_infer::OnnxEngine> {
    if !common::smollm2_present() {
        eprintln!(
            "\n*** SKIPPED: {} is missing; run `eval \"$(scripts/setup.sh)\"` to test the \
             language model ***\n",
            common::models_dir()
                .join(SMOLLM2)
                .join("model.gguf")
                .display()
        );
        return None;
    }
    Some(common::engine())
}

fn generate(prompt: &str, params: Value) -> (Generation, InferenceOutput) {
    let engine = engine().expect("checked by the caller");
    let output = engine
        .infer_blocking(&common::request(SMOLLM2, prompt, params))
        .unwrap();
    assert_eq!(output.mime, "application/json");
    (Generation::from_bytes(&output.bytes).unwrap(), output)
}

#[test]
fn the_capital_of_france_is_paris() {
    if engine().is_none() {
        return;
    }
    let (answer, output) = generate(FRANCE, json!({}));
    assert!(answer.text.contains("Paris"), "{answer:?}");
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert!(answer.usage.prompt_tokens > 5, "{answer:?}");
    assert!(answer.usage.completion_tokens > 0, "{answer:?}");
    assert_eq!(
        output.metadata["seed"],
        flownet_infer::chat::prompt_seed(FRANCE)
    );
    assert_eq!(
        output.metadata["completion_tokens"],
        answer.usage.completion_tokens
    );

    // The same question as a conversation with a system message.
    let chat = json!({"messages": [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": FRANCE},
    ]});
    let (answer, _) = generate(&chat.to_string(), json!({"temperature": 0}));
    assert!(answer.text.contains("Paris"), "{answer:?}");
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() {
    if engine().is_none() {
        return;
    }
    let prompt = "Write a short poem about the sea.";
    let params = json!({"temperature": 1.0, "max_tokens": 24, "seed": 42});
    let (_, first) = generate(prompt, params.clone());
    let (_, second) = generate(prompt, params);
    assert_eq!(first.bytes, second.bytes);
    let others: Vec<Vec<u8>> = (43..46)
        .map(|seed| {
            generate(
                prompt,
                json!({"temperature": 1.0, "max_tokens": 24, "seed": seed}),
            )
            .1
            .bytes
        })
        .collect();
    assert!(
        others.iter().any(|b| *b != first.bytes),
        "seeds 42..46 gave one answer"
    );
}

/// Set in the child processes of `the_same_task_gives_the_same_bytes_in_two_processes`.
const CHILD: &str = "FLOWNET_LLM_CHILD";
const CHILD_PROMPT: &str = "Tell me a fact about cats.";

fn child_params() -> Value {
    json!({"temperature": 0.8, "max_tokens": 20})
}

#[test]
fn child_prints_its_answer() {
    if std::env::var_os(CHILD).is_none() || engine().is_none() {
        return;
    }
    let (_, output) = generate(CHILD_PROMPT, child_params());
    println!("ANSWER {}", hex::encode(&output.bytes));
}

#[test]
fn the_same_task_gives_the_same_bytes_in_two_processes() {
    if engine().is_none() {
        return;
    }
    let run_child = || {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["llm::child_prints_its_answer", "--exact", "--nocapture"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ANSWER "))
            .unwrap_or_else(|| panic!("no answer in the child's output: {stdout}"))
            .to_owned();
        hex::decode(line).unwrap()
    };
    let (a, b) = (run_child(), run_child());
    assert_eq!(a, b);
    let (_, here) = generate(CHILD_PROMPT, child_params());
    assert_eq!(a, here.bytes, "the child and this process disagree");
}

#[test]
fn max_tokens_ends_with_length_and_stop_strings_with_stop() {
    if engine().is_none() {
        return;
    }
    let greedy = json!({"temperature": 0, "max_tokens": 64});
    let (full, _) = generate(FRANCE, greedy);
    assert_eq!(full.finish_reason, FinishReason::Stop, "{full:?}");
    assert!(full.usage.completion_tokens > 3, "{full:?}");

    let (short, _) = generate(FRANCE, json!({"temperature": 0, "max_tokens": 3}));
    assert_eq!(short.finish_reason, FinishReason::Length);
    assert_eq!(short.usage.completion_tokens, 3);
    assert_eq!(short.usage.prompt_tokens, full.usage.prompt_tokens);
    assert!(full.text.starts_with(&short.text), "{short:?} vs {full:?}");
    assert!(!short.text.is_empty());

    // Stop at "Paris": the text ends just before it.
    let at = full.text.find("Paris").expect("the answer names Paris");
    let (stopped, _) = generate(
        FRANCE,
        json!({"temperature": 0, "max_tokens": 64, "stop": ["Paris", "never appears"]}),
    );
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert_eq!(stopped.text, full.text[..at]);
    assert!(
        stopped.usage.completion_tokens >= 1
            && stopped.usage.completion_tokens < full.usage.completion_tokens,
        "{stopped:?} vs {full:?}"
    );
    // One token per decode step: max_tokens equal to the stop's count stops there too.
    let (same, _) = generate(
        FRANCE,
        json!({"temperature": 0, "max_tokens": stopped.usage.completion_tokens, "stop": "Paris"}),
    );
    assert_eq!(same.text, stopped.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_folds_into_the_stored_answer() {
    let Some(engine) = engine() else {
        return;
    };
    let engine: &dyn Engine = engine;
    let chunks = Mutex::new(Vec::new());
    let request = common::request(SMOLLM2, FRANCE, json!({"max_tokens": 40}));
    let streamed = engine
        .infer_stream(request.clone(), &|c| chunks.lock().unwrap().push(c))
        .await
        .unwrap();
    let chunks = chunks.into_inner().unwrap();
    assert!(chunks.len() >= 3, "{chunks:?}");
    let folded = GenerationFold::fold(&chunks).unwrap();
    assert_eq!(folded.to_bytes(), streamed.bytes);
    // The unstreamed answer is the same bytes.
    assert_eq!(engine.infer(request).await.unwrap().bytes, streamed.bytes);
    assert!(folded.text.contains("Paris"), "{folded:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_running() {
    let Some(onnx) = engine() else {
        return;
    };
    let engine: &dyn Engine = onnx;
    let context = onnx.context_length(SMOLLM2).unwrap();
    assert_eq!(context, 8192);
    let long = "word ".repeat(context as usize + 10);
    let cases = [
        (json!({"messages": []}).to_string(), json!({}), "is empty"),
        (String::new(), json!({}), "the prompt is empty"),
        (
            json!({"messages": [{"role": "wizard", "content": "hi"}]}).to_string(),
            json!({}),
            "unknown role \"wizard\"",
        ),
        (
            FRANCE.into(),
            json!({"max_tokens": 0}),
            "params.max_tokens must be an integer from 1 to 8192",
        ),
        (
            FRANCE.into(),
            json!({"max_tokens": context + 1}),
            "from 1 to 8192",
        ),
        (
            FRANCE.into(),
            json!({"max_tokens": context - 5}),
            "must fit the context window of 8192 tokens",
        ),
        (
            long,
            json!({"max_tokens": 1}),
            "longer than the context window",
        ),
        (FRANCE.into(), json!({"top_p": 2}), "params.top_p"),
        (FRANCE.into(), json!({"stop": [""]}), "params.stop"),
    ];
    for (prompt, params, expected) in cases {
        let request = common::request(SMOLLM2, &prompt, params.clone());
        let checked = onnx.check_request(&request).unwrap_err().to_string();
        assert!(checked.contains(expected), "{params}: {checked}");
        match engine.infer(request).await.unwrap_err() {
            Error::InvalidInput(msg) => assert!(msg.contains(expected), "{params}: {msg}"),
            other => panic!("{params}: expected InvalidInput, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_cancels_the_run() {
    let Some(engine) = engine() else {
        return;
    };
    let engine: &dyn Engine = engine;
    let request = common::request(
        SMOLLM2,
        "Count from 1 to 1000.",
        json!({"max_tokens": 2000}),
    );
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = move |_| {
        let _ = seen_tx.send(());
    };
    let run = engine.infer_stream(request, &sink);
    // Give up as soon as the first chunk arrives; the run must stop rather than go on
    // for 2000 tokens (the next request would then wait for it).
    tokio::select! {
        _ = run => panic!("2000 tokens came faster than the first chunk"),
        _ = seen_rx.recv() => {}
    }
    let started = std::time::Instant::now();
    let (answer, _) = tokio::task::spawn_blocking(|| generate(FRANCE, json!({"max_tokens": 8})))
        .await
        .unwrap();
    assert!(!answer.text.is_empty());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the cancelled run kept the model busy for {:?}",
        started.elapsed()
    );
}

#[test]
fn the_count_paid_for_is_the_answers_tokens_under_the_models_tokenizer() {
    if engine().is_none() {
        return;
    }
    let manifest = flownet_infer::ModelManifest::load(common::models_dir().join(SMOLLM2)).unwrap();
    for params in [
        json!({"max_tokens": 48, "seed": 3}),
        json!({"max_tokens": 48, "seed": 4, "temperature": 1.2}),
        json!({"temperature": 0, "max_tokens": 64, "stop": "Paris"}),
    ] {
        let (answer, _) = generate(FRANCE, params.clone());
        let counted = flownet_infer::count_tokens(&manifest, &answer.text).unwrap();
        assert_eq!(
            answer.usage.completion_tokens,
            counted.min(params["max_tokens"].as_u64().unwrap()),
            "{params} {answer:?}"
        );
    }
    // A different text counts differently: the counter reads the text.
    let one = flownet_infer::count_tokens(&manifest, "Paris").unwrap();
    let many = flownet_infer::count_tokens(&manifest, "Paris is the capital of France.").unwrap();
    assert!(one >= 1 && many > one, "{one} {many}");
}
