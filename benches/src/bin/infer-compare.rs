//! Times each model at batch 1 the way `benches/python/infer_bench.py` times Python
//! onnxruntime (same thread count, warm-up, then N timed runs) and prints one JSON
//! object per model. `benches/compare_python.sh` runs both and prints the ratio.

use std::time::Instant;

use anyhow::{Context, Result};
use flownet_infer::{EngineOptions, OnnxEngine, default_models_dir};

const EMBED: &str = "all-minilm-l6-v2";
const OCR: &str = "pp-ocrv4";
const SPEECH: &str = "piper-joe-medium";
/// The speech benchmark's text: the one `benches/python/tts_ref.py --bench` speaks.
const SPEECH_TEXT: &str = "FlowNet lets anyone pay a node to run a model, and get the answer back in seconds. \
The node is paid from escrow when it delivers; if it does not, the money comes back. \
Ratings build each node's reputation over time.";

fn main() -> Result<()> {
    let mut threads = 1usize;
    let mut iters = 50usize;
    let mut ocr_pages: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().context("--threads N")?.parse()?,
            "--iters" => iters = args.next().context("--iters N")?.parse()?,
            "--ocr-pages" => ocr_pages = Some(args.next().context("--ocr-pages DIR")?.into()),
            other => anyhow::bail!(
                "unknown argument {other} (use --threads N --iters N [--ocr-pages DIR])"
            ),
        }
    }
    let dir = default_models_dir();
    let engine = OnnxEngine::load(&dir, &EngineOptions::default().with_threads(threads))
        .with_context(|| {
            format!(
                "loading models from {} (run scripts/setup.sh)",
                dir.display()
            )
        })?;
    let ids: Vec<String> = engine.manifests().map(|m| m.id.clone()).collect();
    // Embeddings: the whole pipeline (tokenize, run, pool) over the benchmark's 32
    // sentences in one request, as benches/python/embed_ref.py --bench times it.
    if engine.manifest(EMBED).is_some() {
        let sentences: Vec<String> =
            serde_json::from_str(include_str!("../../python/embed_sentences.json"))?;
        let request = flownet_core::InferenceRequest {
            model_id: EMBED.into(),
            prompt: serde_json::json!({ "input": sentences }).to_string(),
            params: serde_json::Map::new(),
            input: None,
        };
        let times = time(iters.min(20), || engine.infer_blocking(&request).map(drop))?;
        println!(
            "{}",
            serde_json::json!({
                "model": EMBED, "threads": threads, "iters": times.len(),
                "sentences": sentences.len(),
                "sentences_per_s": (sentences.len() as f64 / (p50(&times) / 1000.0) * 10.0).round() / 10.0,
            })
        );
    }
    // OCR: the whole pipeline (decode, detect, classify, recognise) over the pages
    // `benches/python/ocr_ref.py --bench-pages DIR` rendered, the images its --bench
    // reads.
    if let Some(dir) = ocr_pages.filter(|_| engine.manifest(OCR).is_some()) {
        let mut pages = Vec::new();
        for n in 0.. {
            match std::fs::read(dir.join(format!("page{n}.png"))) {
                Ok(bytes) => pages.push(bytes),
                Err(_) => break,
            }
        }
        anyhow::ensure!(!pages.is_empty(), "no page0.png in {}", dir.display());
        let requests: Vec<flownet_core::InferenceRequest> = pages
            .into_iter()
            .map(|bytes| flownet_core::InferenceRequest {
                model_id: OCR.into(),
                prompt: String::new(),
                params: serde_json::Map::new(),
                input: Some(bytes),
            })
            .collect();
        let times = time(iters.min(10), || {
            requests
                .iter()
                .try_for_each(|r| engine.infer_blocking(r).map(drop))
        })?;
        println!(
            "{}",
            serde_json::json!({
                "model": OCR, "threads": threads, "iters": times.len(),
                "images": requests.len(),
                "images_per_s": (requests.len() as f64 / (p50(&times) / 1000.0) * 100.0).round() / 100.0,
            })
        );
    }
    // Speech: the whole pipeline (phonemize, run each sentence, encode the WAV) over
    // the benchmark's three sentences: compute seconds per second of audio.
    if engine.manifest(SPEECH).is_some() {
        let request = flownet_core::InferenceRequest {
            model_id: SPEECH.into(),
            prompt: SPEECH_TEXT.into(),
            params: serde_json::Map::new(),
            input: None,
        };
        let out = engine.infer_blocking(&request)?;
        let seconds = out.metadata["seconds"].as_f64().unwrap_or(0.0);
        anyhow::ensure!(seconds > 0.0, "the voice said nothing");
        let times = time(iters.min(5), || engine.infer_blocking(&request).map(drop))?;
        println!(
            "{}",
            serde_json::json!({
                "model": SPEECH, "threads": threads, "iters": times.len(),
                "audio_s": (seconds * 100.0).round() / 100.0,
                "real_time_factor": (p50(&times) / 1000.0 / seconds * 10_000.0).round() / 10_000.0,
            })
        );
    }
    for id in ids {
        let Some(inputs) = flownet_benches::model_inputs(&id) else {
            continue;
        };
        let request = flownet_benches::model_request(&id, &dir)?;
        let model_only = time(iters, || engine.run_raw(&id, &inputs).map(drop))?;
        let whole = time(iters, || engine.infer_blocking(&request).map(drop))?;
        println!(
            "{}",
            serde_json::json!({
                "model": id, "threads": threads, "iters": iters, "batch": 1,
                "ms_per_item_p50": p50(&model_only), "ms_per_item_mean": mean(&model_only),
                "request_ms_p50": p50(&whole),
            })
        );
    }
    Ok(())
}

fn time(iters: usize, mut f: impl FnMut() -> flownet_infer::Result<()>) -> Result<Vec<f64>> {
    for _ in 0..5 {
        f()?;
    }
    let mut v = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(v)
}

fn p50(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
