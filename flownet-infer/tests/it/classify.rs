use flownet_core::InferenceRequest;
use flownet_infer::Error;
use serde_json::{Value, json};

use crate::common::{self, MOBILENET};

fn classify(photo: &str, params: Value) -> anyhow::Result<(Vec<(String, f64)>, Value)> {
    let request = InferenceRequest {
        input: Some(common::testdata(photo)),
        ..common::request(MOBILENET, "", params)
    };
    let output = common::engine().infer_blocking(&request)?;
    assert_eq!(output.mime, "application/json");
    let body: Value = serde_json::from_slice(&output.bytes)?;
    assert_eq!(body["model"], MOBILENET);
    let labels = body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert!(l["index"].as_u64().unwrap() < 1000);
            (
                l["label"].as_str().unwrap().to_owned(),
                l["score"].as_f64().unwrap(),
            )
        })
        .collect();
    Ok((labels, output.metadata))
}

#[test]
fn the_cat_is_an_egyptian_mau() -> anyhow::Result<()> {
    let (labels, metadata) = classify("chelsea.png", json!({}))?;
    assert_eq!(labels.len(), 5);
    assert_eq!(labels[0].0, "Egyptian Mau", "{labels:?}");
    // The reference pipeline (PIL + onnxruntime in Python) gives 0.717 here.
    assert!((0.6..0.85).contains(&labels[0].1), "{labels:?}");
    // The runners-up are cats too.
    let cats = ["a cat having a striped coat", "tabby cat", "tiger cat"];
    assert!(
        labels[1..3].iter().all(|(l, _)| cats.contains(&l.as_str())),
        "{labels:?}"
    );
    assert!(labels.windows(2).all(|w| w[0].1 >= w[1].1), "{labels:?}");
    assert!(labels.iter().map(|(_, s)| s).sum::<f64>() <= 1.0 + 1e-6);
    assert_eq!(metadata["input_width"], 451);
    assert_eq!(metadata["top"]["label"], "Egyptian Mau");
    Ok(())
}

#[test]
fn the_coffee_is_an_espresso() -> anyhow::Result<()> {
    let (labels, _) = classify("coffee.png", json!({"top_k": 3}))?;
    assert_eq!(labels.len(), 3);
    assert_eq!(labels[0].0, "espresso", "{labels:?}");
    assert!(labels[0].1 > 0.9, "{labels:?}");
    Ok(())
}

#[test]
fn every_class_can_be_asked_for() -> anyhow::Result<()> {
    let (labels, _) = classify("coffee.png", json!({"top_k": 1000}))?;
    assert_eq!(labels.len(), 1000);
    let total: f64 = labels.iter().map(|(_, s)| s).sum();
    assert!((total - 1.0).abs() < 1e-3, "{total}");
    Ok(())
}

#[test]
fn bad_requests_are_invalid_input() {
    let engine = common::engine();
    let missing = common::request(MOBILENET, "a cat", json!({}));
    let msg = engine.infer_blocking(&missing).unwrap_err().to_string();
    assert!(msg.contains("needs an input image"), "{msg}");

    let garbage = InferenceRequest {
        input: Some(b"not an image".to_vec()),
        ..missing.clone()
    };
    assert!(matches!(
        engine.infer_blocking(&garbage),
        Err(Error::InvalidInput(_))
    ));

    for top_k in [json!(0), json!(1001), json!("5"), json!(2.5)] {
        let request = InferenceRequest {
            input: Some(common::testdata("coffee.png")),
            ..common::request(MOBILENET, "", json!({ "top_k": top_k }))
        };
        let err = engine.infer_blocking(&request).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        assert!(
            err.to_string()
                .contains("params.top_k must be an integer from 1 to 1000"),
            "{err}"
        );
    }
}

#[test]
fn jpeg_and_grayscale_inputs_work() -> anyhow::Result<()> {
    let photo = image::load_from_memory(&common::testdata("coffee.png"))?;
    let mut jpeg = Vec::new();
    photo.write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )?;
    let mut gray = Vec::new();
    photo.grayscale().write_to(
        &mut std::io::Cursor::new(&mut gray),
        image::ImageFormat::Png,
    )?;
    for (bytes, format) in [(jpeg, "jpeg"), (gray, "grayscale png")] {
        let request = InferenceRequest {
            input: Some(bytes),
            ..common::request(MOBILENET, "", json!({}))
        };
        let output = common::engine().infer_blocking(&request)?;
        let body: Value = serde_json::from_slice(&output.bytes)?;
        assert_eq!(body["labels"][0]["label"], "espresso", "{format}: {body}");
    }
    Ok(())
}
