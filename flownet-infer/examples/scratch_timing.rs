use flownet_core::InferenceRequest;
use flownet_infer::{EngineOptions, OnnxEngine, default_models_dir};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let t = Instant::now();
    let engine = OnnxEngine::load(
        default_models_dir(),
        &EngineOptions::default().with_threads(2),
    )?;
    eprintln!("load {:?}", t.elapsed());
    for (i, prompt) in [
        "flat calm plains",
        "rolling hills",
        "rugged alpine mountains",
        "jagged cliffs",
        "a desert",
    ]
    .iter()
    .enumerate()
    {
        let req = InferenceRequest {
            model_id: "terrain-diffusion-128".into(),
            prompt: prompt.to_string(),
            params: Default::default(),
            input: None,
        };
        let out = engine.infer_blocking(&req)?;
        std::fs::write(format!("/tmp/terrain_{i}.png"), &out.bytes)?;
        eprintln!("{prompt}: {}", out.metadata);
    }
    let req = InferenceRequest {
        model_id: "terrain-diffusion-128".into(),
        prompt: "x".into(),
        params: Default::default(),
        input: None,
    };
    for _ in 0..2 {
        engine.infer_blocking(&req)?;
    }
    let n = 10;
    let t = Instant::now();
    for _ in 0..n {
        engine.infer_blocking(&req)?;
    }
    eprintln!(
        "terrain {:.1} ms/image",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    let img = std::fs::read(default_models_dir().join("testdata/chelsea.png"))?;
    let req = InferenceRequest {
        model_id: "mobilenet-v2".into(),
        prompt: "".into(),
        params: Default::default(),
        input: Some(img),
    };
    let out = engine.infer_blocking(&req)?;
    eprintln!("{}", String::from_utf8_lossy(&out.bytes));
    for _ in 0..3 {
        engine.infer_blocking(&req)?;
    }
    let n = 30;
    let t = Instant::now();
    for _ in 0..n {
        engine.infer_blocking(&req)?;
    }
    eprintln!(
        "mobilenet (decode+preprocess+run) {:.1} ms/image",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
    Ok(())
}
