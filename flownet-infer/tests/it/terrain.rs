use flownet_core::InferenceOutput;
use flownet_infer::{Error, terrain};
use serde_json::{Value, json};

use crate::common::{self, TERRAIN};

fn generate(prompt: &str, params: Value) -> InferenceOutput {
    common::engine()
        .infer_blocking(&common::request(TERRAIN, prompt, params))
        .unwrap()
}

fn relief(output: &InferenceOutput) -> f64 {
    output.metadata["height_max"].as_f64().unwrap()
        - output.metadata["height_min"].as_f64().unwrap()
}

#[test]
fn a_prompt_gives_a_128px_png() -> anyhow::Result<()> {
    let prompt = "Rugged alpine mountains";
    let output = generate(prompt, json!({}));
    assert_eq!(output.mime, "image/png");
    let image = image::load_from_memory_with_format(&output.bytes, image::ImageFormat::Png)?;
    assert_eq!((image.width(), image.height()), (128, 128));
    assert_eq!(image.color(), image::ColorType::Rgb8);
    let m = &output.metadata;
    assert_eq!(m["seed"], terrain::prompt_seed(prompt));
    assert_eq!(m["difficulty"], 80);
    assert_eq!(m["difficulty_source"], "keyword");
    let (min, max) = (
        m["height_min"].as_f64().unwrap(),
        m["height_max"].as_f64().unwrap(),
    );
    assert!((0.0..max).contains(&min) && max <= 22.17, "{m}");
    // The picture is not one flat colour.
    let rgb = image.to_rgb8();
    let first = rgb.get_pixel(0, 0);
    assert!(rgb.pixels().filter(|p| *p != first).count() > 128 * 64);
    Ok(())
}

#[test]
fn the_same_prompt_gives_the_same_bytes() {
    let a = generate("gentle rolling hills at dawn", json!({}));
    let b = generate("gentle rolling hills at dawn", json!({}));
    assert_eq!(a, b);
    let c = generate("gentle rolling hills at dusk", json!({}));
    assert_ne!(a.bytes, c.bytes);
    assert_eq!(a.metadata["difficulty"], c.metadata["difficulty"]);
}

#[test]
fn params_override_the_prompt() {
    let params = json!({"seed": 12345, "difficulty": 60});
    let a = generate("flat", params.clone());
    let b = generate("jagged cliffs", params);
    assert_eq!(a.bytes, b.bytes);
    assert_eq!(a.metadata["seed"], 12345);
    assert_eq!(a.metadata["difficulty_source"], "params");
    let c = generate("flat", json!({"seed": 12346, "difficulty": 60}));
    assert_ne!(a.bytes, c.bytes);
}

#[test]
fn difficulty_raises_the_relief() {
    let easy = generate("", json!({"seed": 7, "difficulty": 1}));
    let hard = generate("", json!({"seed": 7, "difficulty": 100}));
    assert!(
        relief(&hard) > relief(&easy) * 1.5,
        "easy {} hard {}",
        easy.metadata,
        hard.metadata
    );
}

#[test]
fn gray_writes_the_plain_heightmap() -> anyhow::Result<()> {
    let output = generate("hills", json!({"colormap": "gray"}));
    let image = image::load_from_memory(&output.bytes)?;
    assert_eq!(image.color(), image::ColorType::L8);
    let luma = image.to_luma8();
    // Normalised from the lowest to the highest point.
    assert_eq!(luma.pixels().map(|p| p[0]).min(), Some(0));
    assert_eq!(luma.pixels().map(|p| p[0]).max(), Some(255));
    Ok(())
}

#[test]
fn bad_params_are_invalid_input() {
    for (params, key) in [
        (json!({"difficulty": 0}), "difficulty"),
        (json!({"difficulty": "hard"}), "difficulty"),
        (json!({"seed": -5}), "seed"),
        (json!({"colormap": "viridis"}), "colormap"),
    ] {
        let err = common::engine()
            .infer_blocking(&common::request(TERRAIN, "hills", params))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("params.{key} must be")),
            "{err}"
        );
    }
}
