//! Inference per item for each model, at batch 1: the model alone (raw tensors in and
//! out, comparable with Python onnxruntime) and the whole request (prompt or image in,
//! PNG or JSON out). Threads per session: FLOWNET_BENCH_THREADS (default 1).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flownet_infer::{EngineOptions, OnnxEngine, default_models_dir};

fn inference(c: &mut Criterion) {
    let threads = std::env::var("FLOWNET_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let dir = default_models_dir();
    let engine = match OnnxEngine::load(&dir, &EngineOptions::default().with_threads(threads)) {
        Ok(e) => e,
        Err(e) => panic!(
            "cannot load the models in {} ({e}): run `eval \"$(scripts/setup.sh)\"` first",
            dir.display()
        ),
    };
    // Language models are timed in tokens per second by the `llm` bench.
    let ids: Vec<String> = engine
        .manifests()
        .filter(|m| m.kind != flownet_core::TaskKind::TextGeneration)
        .map(|m| m.id.clone())
        .collect();
    let mut g = c.benchmark_group(format!("inference_{threads}_threads"));
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for id in ids {
        if let Some(inputs) = flownet_benches::model_inputs(&id) {
            g.bench_function(format!("{id}/model_only"), |b| {
                b.iter(|| engine.run_raw(&id, &inputs).unwrap())
            });
        }
        // Models this bench has no request for (kinds added later) are left out.
        let Ok(request) = flownet_benches::model_request(&id, &dir) else {
            continue;
        };
        g.bench_function(format!("{id}/request"), |b| {
            b.iter(|| engine.infer_blocking(&request).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, inference);
criterion_main!(benches);
