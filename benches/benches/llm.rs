//! Prefill and decode tokens per second of the GGUF language model through the engine's
//! whole request path (chat template, tokenizer, sampling, detokenizing), on 1 and 2
//! threads, in the units llama.cpp's `llama-bench` reports (`pp512`, `tg128`).
//! A plain program, not a criterion loop: one generation is hundreds of milliseconds.
//!
//! `FLOWNET_BENCH_THREADS` (default `1,2`) lists the thread counts, `FLOWNET_BENCH_RUNS`
//! (default 5) the runs per figure; the median is printed, one JSON object per line.
//! `benches/compare_llama.sh` runs this and `llama-bench` on the same GGUF file.

use std::time::Instant;

use anyhow::{Context, Result};
use flownet_core::{Generation, InferenceRequest};
use flownet_infer::{EngineOptions, OnnxEngine, default_models_dir};
use serde_json::json;

const MODEL: &str = "smollm2-135m-instruct";

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; this program takes no arguments of its own.
    let threads: Vec<usize> = std::env::var("FLOWNET_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|t| t.trim().parse().context("FLOWNET_BENCH_THREADS: e.g. 1,2"))
        .collect::<Result<_>>()?;
    let runs: usize = std::env::var("FLOWNET_BENCH_RUNS")
        .ok()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5);
    let dir = default_models_dir();
    for &t in &threads {
        let options = EngineOptions::default()
            .with_threads(t)
            .with_models([MODEL]);
        let engine = OnnxEngine::load(&dir, &options).with_context(|| {
            format!(
                "loading {MODEL} from {} (run scripts/setup.sh)",
                dir.display()
            )
        })?;
        let prefill = prefill(&engine, runs)?;
        let decode = decode(&engine, runs)?;
        println!(
            "{}",
            json!({"model": MODEL, "threads": t, "runs": runs, "prefill": prefill, "decode": decode})
        );
    }
    Ok(())
}

fn request(prompt: &str, params: serde_json::Value) -> InferenceRequest {
    InferenceRequest {
        model_id: MODEL.into(),
        prompt: prompt.into(),
        params: params.as_object().cloned().unwrap_or_default(),
        input: None,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A prompt of about 512 tokens read at once, one token generated.
fn prefill(engine: &OnnxEngine, runs: usize) -> Result<serde_json::Value> {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(51);
    let request = request(&text, json!({"max_tokens": 1}));
    let mut rates = Vec::new();
    let mut tokens = 0;
    for run in 0..=runs {
        let output = engine.infer_blocking(&request)?;
        tokens = output.metadata["prompt_tokens"].as_u64().unwrap_or(0);
        let ms = output.metadata["prefill_ms"].as_f64().unwrap_or(f64::NAN);
        // The first run warms the caches.
        if run > 0 {
            rates.push(tokens as f64 / ms * 1e3);
        }
    }
    Ok(json!({"prompt_tokens": tokens, "tokens_per_s": median(rates)}))
}

/// 128 tokens generated one at a time after a short prompt, timed from the first
/// sampled token to the last (`decode_ms`), and the whole request from the outside.
fn decode(engine: &OnnxEngine, runs: usize) -> Result<serde_json::Value> {
    let mut rates = Vec::new();
    let mut whole = Vec::new();
    let mut tokens = 0;
    for run in 0..=runs {
        // A different seed each run, the same ones every time the bench runs; sampled
        // at temperature 1 the story goes on past 128 tokens.
        let request = request(
            "Write a long story about a dragon who learns to bake bread.",
            json!({"max_tokens": 128, "temperature": 1.0, "seed": run}),
        );
        let started = Instant::now();
        let output = engine.infer_blocking(&request)?;
        let elapsed = started.elapsed().as_secs_f64();
        let answer = Generation::from_bytes(&output.bytes)?;
        tokens = answer.usage.completion_tokens;
        let ms = output.metadata["decode_ms"].as_f64().unwrap_or(f64::NAN);
        if run > 0 {
            rates.push(tokens as f64 / ms * 1e3);
            whole.push(tokens as f64 / elapsed);
        }
    }
    Ok(json!({
        "completion_tokens": tokens,
        "tokens_per_s": median(rates),
        "request_tokens_per_s": median(whole),
    }))
}
