//! PP-OCRv4 through the OCR pipeline: text rendered here (by Pillow, through
//! `benches/python/ocr_ref.py`) is read back exactly, as the Python reference reads it.

use std::ffi::OsStr;

use flownet_core::{InferenceRequest, ocr::Reading};
use serde_json::{Value, json};

use crate::common::{self, PPOCR};

/// A PNG of `lines` (size in pixels, text), black on white.
fn render(lines: &[(u32, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.png");
    let specs: Vec<String> = lines.iter().map(|(s, t)| format!("{s}:{t}")).collect();
    let mut args: Vec<&OsStr> = vec![OsStr::new("--render"), path.as_os_str()];
    for spec in &specs {
        args.push(OsStr::new("--line"));
        args.push(OsStr::new(spec));
    }
    common::run_python("ocr_ref.py", &args);
    std::fs::read(&path).unwrap()
}

fn read(image: Vec<u8>) -> flownet_infer::Result<Reading> {
    let out = common::engine().infer_blocking(&InferenceRequest {
        input: Some(image),
        ..common::request(PPOCR, "sha256:unused", json!({}))
    })?;
    assert_eq!(out.mime, "application/json");
    Ok(Reading::from_bytes(&out.bytes).expect("the output is OCR JSON"))
}

/// What the Python reference reads in `image`.
fn reference(image: &[u8]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.png");
    std::fs::write(&path, image).unwrap();
    let models = common::models_dir();
    let out = common::run_python(
        "ocr_ref.py",
        &[
            OsStr::new("--models"),
            models.as_os_str(),
            OsStr::new("--read"),
            path.as_os_str(),
        ],
    );
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn rendered_lines_in_two_sizes_are_read_back_exactly() {
    let lines = [
        (44, "FlowNet reads 2026 invoices"),
        (26, "Total due: 1,250.00 EUR by 12 March"),
        (44, "Second large line"),
        (20, "small print, quite small (7 words)"),
    ];
    let image = render(&lines);
    let reading = read(image.clone()).unwrap();
    let want: Vec<&str> = lines.iter().map(|(_, t)| *t).collect();
    let got: Vec<&str> = reading.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(got, want, "{reading:?}");
    assert_eq!(reading.text, want.join("\n"));
    assert_eq!(reading.model, PPOCR);
    // Lines go down the page and lie inside it; the big ones are taller.
    for pair in reading.lines.windows(2) {
        assert!(pair[0].corners[0][1] < pair[1].corners[0][1], "{reading:?}");
    }
    let height = |i: usize| reading.lines[i].corners[2][1] - reading.lines[i].corners[0][1];
    assert!(
        height(0) > height(1) && height(2) > height(3),
        "{reading:?}"
    );
    for line in &reading.lines {
        assert!(line.score > 0.8, "{line:?}");
    }

    // The Python reference (same models, same steps) reads the same lines, within a
    // few pixels of the same boxes (the two resizers round differently).
    let py = reference(&image);
    assert_eq!(py["text"], json!(reading.text), "{py}");
    for (line, py_line) in reading.lines.iter().zip(py["lines"].as_array().unwrap()) {
        for (corner, py_corner) in line.corners.iter().zip(py_line["box"].as_array().unwrap()) {
            for k in 0..2 {
                let d = i64::from(corner[k]) - py_corner[k].as_i64().unwrap();
                assert!(d.abs() <= 4, "{line:?} vs {py_line}");
            }
        }
    }
}

#[test]
fn upside_down_text_is_turned_and_read() {
    let image = render(&[(40, "Upside down text 42")]);
    let decoded = image::load_from_memory(&image).unwrap().to_rgb8();
    let turned = image::imageops::rotate180(&decoded);
    let mut png = Vec::new();
    turned
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(read(png).unwrap().text, "Upside down text 42");
}

#[test]
fn an_image_with_no_text_or_no_image_is_refused() {
    let blank = image::RgbImage::from_pixel(320, 200, image::Rgb([255, 255, 255]));
    let mut png = Vec::new();
    blank
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let err = read(png).unwrap_err();
    assert!(
        matches!(err, flownet_infer::Error::InvalidInput(_)) && err.to_string().contains("no text"),
        "{err}"
    );

    let err = read(b"not an image at all".to_vec()).unwrap_err();
    assert!(
        matches!(err, flownet_infer::Error::InvalidInput(_)),
        "{err}"
    );

    let err = common::engine()
        .infer_blocking(&common::request(PPOCR, "read this", json!({})))
        .unwrap_err();
    assert!(err.to_string().contains("input image"), "{err}");
}

#[test]
fn the_model_digest_covers_all_three_files() {
    let manifest = common::engine().manifest(PPOCR).unwrap();
    assert_eq!(manifest.file_sha256.len(), 2);
    let digest = manifest.digest();
    assert_ne!(digest, manifest.sha256);
    let info = manifest.info();
    assert_eq!(info.weights_sha256, digest);
    // Changing any one file's hash changes the digest.
    let mut other = manifest.clone();
    other
        .file_sha256
        .insert("cls".into(), flownet_core::Digest32([7; 32]));
    assert_ne!(other.digest(), digest);
    // A file whose bytes do not match its hash is refused.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(PPOCR);
    std::fs::create_dir(&copy).unwrap();
    for name in ["manifest.json", "det.onnx", "cls.onnx"] {
        std::fs::copy(manifest.dir.join(name), copy.join(name)).unwrap();
    }
    std::fs::write(copy.join("rec.onnx"), b"tampered").unwrap();
    let err = flownet_infer::OnnxEngine::load(dir.path(), &common::options().with_models([PPOCR]))
        .unwrap_err();
    assert!(
        matches!(err, flownet_infer::Error::ChecksumMismatch { ref path, .. } if path.ends_with("rec.onnx")),
        "{err}"
    );
}
