//! Piper's joe voice through the speech pipeline (phonemes from the espeak-ng
//! binary), against the Python reference (`benches/python/tts_ref.py`) run here.

use std::ffi::OsStr;

use flownet_core::InferenceRequest;
use serde_json::{Value, json};

use crate::common::{self, PIPER};

fn speak(prompt: &str, params: Value) -> flownet_infer::Result<flownet_core::InferenceOutput> {
    common::engine().infer_blocking(&common::request(PIPER, prompt, params))
}

fn samples(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[test]
fn text_becomes_a_wav_of_speech() {
    let text = "Hello there. This is FlowNet, reading a sentence aloud!";
    let out = speak(text, json!({})).unwrap();
    assert_eq!(out.mime, "audio/wav");
    assert_eq!(&out.bytes[0..4], b"RIFF");
    assert_eq!(&out.bytes[8..12], b"WAVE");
    assert_eq!(
        u32::from_le_bytes(out.bytes[24..28].try_into().unwrap()),
        22_050
    );
    let pcm = samples(&out.bytes[44..]);
    let seconds = pcm.len() as f64 / 22_050.0;
    // Everyday speech: 10 to 20 characters a second.
    let per_second = text.len() as f64 / seconds;
    assert!(
        (8.0..25.0).contains(&per_second),
        "{seconds} s for {} characters",
        text.len()
    );
    assert_eq!(pcm.iter().map(|s| s.unsigned_abs()).max(), Some(32767));
    assert_eq!(out.metadata["sentences"], 2);

    // Faster speech is shorter; pcm is the same samples without the header.
    let fast = speak(text, json!({"speed": 2.0, "format": "pcm"})).unwrap();
    assert_eq!(fast.mime, "audio/pcm");
    let fast_seconds = fast.bytes.len() as f64 / 2.0 / 22_050.0;
    assert!(fast_seconds < seconds * 0.7, "{fast_seconds} vs {seconds}");
}

#[test]
fn without_noise_the_samples_match_the_python_reference() {
    let text = "The node is paid when it delivers; otherwise, the money comes back.";
    let out = speak(
        text,
        json!({"format": "pcm", "noise_scale": 0.0, "noise_w": 0.0}),
    )
    .unwrap();
    let again = speak(
        text,
        json!({"format": "pcm", "noise_scale": 0.0, "noise_w": 0.0}),
    )
    .unwrap();
    assert_eq!(
        out.bytes, again.bytes,
        "without noise the voice is deterministic"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref.pcm");
    let models = common::models_dir();
    common::run_python(
        "tts_ref.py",
        &[
            OsStr::new("--models"),
            models.as_os_str(),
            OsStr::new("--threads"),
            OsStr::new("2"),
            OsStr::new("--say"),
            OsStr::new(text),
            OsStr::new("--noise-scale"),
            OsStr::new("0"),
            OsStr::new("--noise-w"),
            OsStr::new("0"),
            OsStr::new("--pcm"),
            OsStr::new("--out"),
            path.as_os_str(),
        ],
    );
    let ours = samples(&out.bytes);
    let theirs = samples(&std::fs::read(&path).unwrap());
    // The same phoneme ids give the same number of samples ...
    assert_eq!(ours.len(), theirs.len());
    // ... and the same waveform, up to float rounding.
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).unsigned_abs())
        .max()
        .unwrap();
    assert!(diff <= 64, "largest sample difference {diff}");
}

#[test]
fn bad_text_and_params_are_refused() {
    for (prompt, params, want) in [
        ("  \n ", json!({}), "empty"),
        ("hello", json!({"speed": 9}), "params.speed"),
        ("hello", json!({"format": "mp3"}), "params.format"),
        ("hello", json!({"noise_w": -1}), "params.noise_w"),
    ] {
        let err = speak(prompt, params).unwrap_err();
        assert!(
            matches!(err, flownet_infer::Error::InvalidInput(_)),
            "{err}"
        );
        assert!(err.to_string().contains(want), "{err}");
    }
    let long = "word ".repeat(1000);
    assert!(
        speak(&long, json!({}))
            .unwrap_err()
            .to_string()
            .contains("at most")
    );
    // Input blobs are read like the prompt; they must be UTF-8.
    let err = common::engine()
        .infer_blocking(&InferenceRequest {
            input: Some(vec![0xff, 0xfe]),
            ..common::request(PIPER, "sha256:x", json!({}))
        })
        .unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
}
