use flownet_core::{Engine, TaskKind};
use flownet_infer::{Error, ModelManifest, OnnxEngine, terrain};

use crate::common::{self, MINILM, MOBILENET, PIPER, PPOCR, SMOLLM2, TERRAIN};

#[test]
fn models_are_described_by_their_manifests() {
    let mut models = common::engine().models();
    models.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    let mut expected = vec![MINILM, MOBILENET, PIPER, PPOCR, TERRAIN];
    if common::smollm2_present() {
        expected.insert(4, SMOLLM2);
    }
    assert_eq!(ids, expected);
    for m in &models {
        let (kind, mime) = match m.id.as_str() {
            MINILM => (TaskKind::Embedding, "application/json"),
            MOBILENET => (TaskKind::ImageClassification, "application/json"),
            PIPER => (TaskKind::TextToSpeech, "audio/wav"),
            PPOCR => (TaskKind::Ocr, "application/json"),
            SMOLLM2 => (TaskKind::TextGeneration, "application/json"),
            TERRAIN => (TaskKind::TextToImage, "image/png"),
            other => panic!("unexpected model {other}"),
        };
        assert_eq!((m.kind, m.output_mime.as_str()), (kind, mime), "{}", m.id);
        let manifest = ModelManifest::load(common::models_dir().join(&m.id)).unwrap();
        assert_eq!(m.weights_sha256, manifest.digest());
        // A model of one file is named by that file's hash.
        if manifest.file_sha256.is_empty() {
            assert_eq!(m.weights_sha256, manifest.sha256);
        }
    }
}

#[test]
fn the_terrain_manifest_states_the_keywords_the_code_uses() {
    // The manifest's prompt_mapping is what requesters read; it must describe this code.
    let manifest = ModelManifest::load(common::models_dir().join(TERRAIN)).unwrap();
    for (difficulty, words) in terrain::KEYWORDS {
        let phrase = format!("{} -> {difficulty}", words.join(", "));
        assert!(
            manifest.prompt_mapping.contains(&phrase),
            "prompt_mapping lacks {phrase:?}"
        );
    }
    assert!(
        manifest
            .prompt_mapping
            .contains(&format!("it is {}", terrain::DEFAULT_DIFFICULTY))
    );
}

#[test]
fn a_wrong_checksum_is_a_clear_error() -> anyhow::Result<()> {
    // The real manifest and labels beside weights that are not the published ones.
    let root = tempfile::tempdir()?;
    let src = common::models_dir().join(MOBILENET);
    let dir = root.path().join(MOBILENET);
    std::fs::create_dir(&dir)?;
    for file in ["manifest.json", "labels.json"] {
        std::fs::copy(src.join(file), dir.join(file))?;
    }
    std::fs::write(dir.join("model.onnx"), b"tampered weights")?;

    let err = OnnxEngine::load(root.path(), &common::options()).unwrap_err();
    let Error::ChecksumMismatch {
        path,
        expected,
        actual,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(path, &dir.join("model.onnx"));
    let manifest = ModelManifest::load(&dir)?;
    assert_eq!(expected, &manifest.sha256.to_hex());
    assert_eq!(
        actual,
        &flownet_core::crypto::sha256(b"tampered weights").to_hex()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("model.onnx") && msg.contains(expected) && msg.contains(actual),
        "{msg}"
    );
    Ok(())
}

#[test]
fn only_the_chosen_models_are_loaded() {
    let engine = OnnxEngine::load(
        common::models_dir(),
        &common::options().with_models([MOBILENET]),
    )
    .unwrap();
    let ids: Vec<String> = engine.models().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, [MOBILENET]);
    assert_eq!(engine.threads(), 2);

    let err = OnnxEngine::load(
        common::models_dir(),
        &common::options().with_models(["no-such-model"]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no-such-model"), "{err}");
}
