//! `models/<id>/manifest.json`: what a model is, where its files are and how the
//! prompt becomes its input.

use std::{
    collections::BTreeMap,
    io::Read,
    path::{Component, Path, PathBuf},
};

use flownet_core::{Digest32, ModelInfo, TaskKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The manifest's file name inside a model's directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// A model's manifest, as written by `scripts/make_models.py`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    pub id: String,
    pub kind: TaskKind,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub license: String,
    #[serde(default)]
    pub source: String,
    /// How the weights are stored; absent means ONNX unless the weights file ends in
    /// `.gguf` (see [`ModelManifest::format`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ModelFormat>,
    /// The weights file (ONNX or GGUF), relative to the model's directory.
    pub weights: String,
    /// SHA-256 of the weights file.
    pub sha256: Digest32,
    /// Extra files by role (`labels`, …), relative to the model's directory.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// SHA-256 of the extra files that are weights too (an OCR model's recogniser and
    /// angle classifier), by role: each is checked when it is loaded, and the model's
    /// digest ([`ModelManifest::digest`]) covers them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub file_sha256: BTreeMap<String, Digest32>,
    /// The ONNX graph's inputs and outputs; empty for GGUF models.
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
    /// GGUF language models: the context window in tokens (prompt and `max_tokens`
    /// together); absent means the length the model was trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// GGUF language models: `"gguf-metadata"` (or absent) uses the template in the
    /// file's metadata; anything else is a template name llama.cpp knows (`"chatml"`,
    /// `"llama3"`, ...) or a template itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    pub output_mime: String,
    pub prompt_mapping: String,
    #[serde(default)]
    pub defaults: serde_json::Value,
    /// The directory the manifest was loaded from; file names resolve against it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// How a model's weights are stored, and so which runtime runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// An ONNX graph, run by ONNX Runtime.
    Onnx,
    /// A GGUF language model, run by llama.cpp.
    Gguf,
}

/// One input or output tensor of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    /// Element type, e.g. `f32`.
    pub dtype: String,
    /// Dimensions; `-1` is dynamic (the batch).
    pub shape: Vec<i64>,
}

impl ModelManifest {
    /// Reads and checks `dir/manifest.json`: the id must equal the directory's name and
    /// every file name must stay inside the directory. Does not hash the weights (see
    /// [`ModelManifest::verify_weights`]).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let mut manifest: Self =
            serde_json::from_str(&text).map_err(|e| Error::manifest(&path, e.to_string()))?;
        manifest.dir = dir.to_path_buf();
        manifest.check(&path)?;
        Ok(manifest)
    }

    fn check(&self, path: &Path) -> Result<()> {
        // The directory name is how callers choose models (`--model <id>`), so a
        // manifest elsewhere under another id would be found under the wrong name.
        if let Some(dir_name) = self.dir.file_name().and_then(|n| n.to_str())
            && dir_name != self.id
        {
            return Err(Error::manifest(
                path,
                format!("id {:?} does not match its directory {dir_name:?}", self.id),
            ));
        }
        for name in std::iter::once(&self.weights).chain(self.files.values()) {
            if !is_plain_relative(name) {
                return Err(Error::manifest(
                    path,
                    format!("file {name:?} must be a relative path inside the model's directory"),
                ));
            }
        }
        if let Some(role) = self
            .file_sha256
            .keys()
            .find(|r| !self.files.contains_key(*r))
        {
            return Err(Error::manifest(
                path,
                format!("file_sha256 names {role:?}, which files does not"),
            ));
        }
        match self.format() {
            ModelFormat::Onnx if self.inputs.is_empty() || self.outputs.is_empty() => {
                return Err(Error::manifest(
                    path,
                    "inputs and outputs must not be empty",
                ));
            }
            ModelFormat::Gguf if self.kind != TaskKind::TextGeneration => {
                return Err(Error::manifest(
                    path,
                    format!(
                        "GGUF models serve text-generation, not {}",
                        self.kind.as_str()
                    ),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// How the weights are stored: the manifest's `format`, else GGUF for a `.gguf`
    /// weights file and ONNX otherwise.
    pub fn format(&self) -> ModelFormat {
        self.format.unwrap_or_else(|| {
            if self.weights.to_ascii_lowercase().ends_with(".gguf") {
                ModelFormat::Gguf
            } else {
                ModelFormat::Onnx
            }
        })
    }

    /// The weights file's path.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(&self.weights)
    }

    /// The path of the extra file with this role (e.g. `labels`), if the manifest names one.
    pub fn file_path(&self, role: &str) -> Option<PathBuf> {
        self.files.get(role).map(|name| self.dir.join(name))
    }

    /// Reads the weights and checks them against the manifest's SHA-256; returns the
    /// bytes so the session is built from exactly what was hashed.
    pub fn verify_weights(&self) -> Result<Vec<u8>> {
        read_checked(self.weights_path(), self.sha256)
    }

    /// Reads the extra weights file with this role and checks it against its
    /// `file_sha256`; an error if the manifest names no such file or no hash for it.
    pub fn verify_file(&self, role: &str) -> Result<Vec<u8>> {
        let missing = |what: &str| {
            Error::manifest(
                self.dir.join(MANIFEST_FILE),
                format!("the manifest names no {what} for {role:?}"),
            )
        };
        let path = self
            .file_path(role)
            .ok_or_else(|| missing("file (files)"))?;
        let sha = self
            .file_sha256
            .get(role)
            .copied()
            .ok_or_else(|| missing("hash (file_sha256)"))?;
        read_checked(path, sha)
    }

    /// The digest that names the model's weights on the ledger and in its outputs'
    /// NFTs: the weights file's SHA-256 for a model that is one file; for a model whose
    /// weights are several files, the SHA-256 of the text
    /// `flownet-model-files-v1\n` followed by one line `<role> <sha256 hex>\n` per
    /// file, `weights` first and then each of `file_sha256` in role order, so that
    /// changing any of them changes the digest.
    pub fn digest(&self) -> Digest32 {
        if self.file_sha256.is_empty() {
            return self.sha256;
        }
        let mut text = format!("flownet-model-files-v1\nweights {}\n", self.sha256.to_hex());
        for (role, sha) in &self.file_sha256 {
            text.push_str(&format!("{role} {}\n", sha.to_hex()));
        }
        Digest32(Sha256::digest(text.as_bytes()).into())
    }

    /// What the marketplace is told about the model.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            id: self.id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            weights_sha256: self.digest(),
            output_mime: self.output_mime.clone(),
            prompt_mapping: self.prompt_mapping.clone(),
            defaults: self.defaults.clone(),
        }
    }
}

/// The bytes of `path`, checked against `expected`.
fn read_checked(path: PathBuf, expected: Digest32) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    let actual = Digest32(Sha256::digest(&bytes).into());
    if actual != expected {
        return Err(Error::ChecksumMismatch {
            path,
            expected: expected.to_hex(),
            actual: actual.to_hex(),
        });
    }
    Ok(bytes)
}

/// Whether `name` is a relative path with no `..`, so it cannot point outside the
/// model's directory.
fn is_plain_relative(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Every `<dir>/*/manifest.json` under `models_dir`, sorted by directory name.
pub fn discover(models_dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(models_dir).map_err(|source| Error::Io {
        path: models_dir.to_path_buf(),
        source,
    })?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: models_dir.to_path_buf(),
            source,
        })?;
        let dir = entry.path();
        if dir.join(MANIFEST_FILE).is_file() {
            dirs.push(dir);
        }
    }
    dirs.sort();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{
        "id": "tiny", "kind": "image-classification", "name": "Tiny",
        "weights": "model.onnx", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "files": {"labels": "labels.json"},
        "inputs": [{"name": "input", "dtype": "f32", "shape": [-1, 3, 224, 224]}],
        "outputs": [{"name": "logits", "dtype": "f32", "shape": [-1, 1000]}],
        "output_mime": "application/json", "prompt_mapping": "none", "defaults": {"top_k": 5},
        "some_future_field": true
    }"#;

    fn model_dir(manifest: &str, weights: &[u8]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tiny");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), manifest).unwrap();
        std::fs::write(dir.join("model.onnx"), weights).unwrap();
        root
    }

    #[test]
    fn loads_and_verifies() {
        let root = model_dir(MANIFEST, b"foo");
        let m = ModelManifest::load(root.path().join("tiny")).unwrap();
        assert_eq!(m.kind, TaskKind::ImageClassification);
        assert_eq!(
            m.file_path("labels").unwrap(),
            root.path().join("tiny/labels.json")
        );
        assert_eq!(m.verify_weights().unwrap(), b"foo");
        assert_eq!(m.info().defaults["top_k"], 5);
        assert_eq!(
            discover(root.path()).unwrap(),
            vec![root.path().join("tiny")]
        );
    }

    #[test]
    fn gguf_manifests_need_no_tensors_and_must_generate_text() {
        let gguf = r#"{
            "id": "tiny", "kind": "text-generation", "name": "Tiny", "weights": "model.gguf",
            "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "context_length": 2048, "output_mime": "application/json", "prompt_mapping": "chat"
        }"#;
        let root = model_dir(gguf, b"foo");
        let m = ModelManifest::load(root.path().join("tiny")).unwrap();
        assert_eq!(m.format(), ModelFormat::Gguf);
        assert_eq!(m.context_length, Some(2048));
        let wrong = gguf.replace("text-generation", "text-to-image");
        let root = model_dir(&wrong, b"foo");
        let msg = ModelManifest::load(root.path().join("tiny"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("GGUF models serve text-generation"), "{msg}");
    }

    #[test]
    fn wrong_checksum_names_file_and_both_hashes() {
        let root = model_dir(MANIFEST, b"bar");
        let m = ModelManifest::load(root.path().join("tiny")).unwrap();
        let msg = m.verify_weights().unwrap_err().to_string();
        assert!(msg.contains("model.onnx"), "{msg}");
        assert!(
            msg.contains("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"),
            "{msg}"
        );
        assert!(msg.contains(&hex::encode(Sha256::digest(b"bar"))), "{msg}");
    }

    #[test]
    fn rejects_paths_outside_the_directory_and_wrong_ids() {
        let escaped = MANIFEST.replace("\"labels.json\"", "\"../../etc/passwd\"");
        let root = model_dir(&escaped, b"foo");
        let msg = ModelManifest::load(root.path().join("tiny"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("relative path inside"), "{msg}");

        let renamed = MANIFEST.replace("\"id\": \"tiny\"", "\"id\": \"other\"");
        let root = model_dir(&renamed, b"foo");
        let msg = ModelManifest::load(root.path().join("tiny"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("does not match its directory"), "{msg}");
    }
}
