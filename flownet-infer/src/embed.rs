//! Sentence embeddings (`embedding` models): texts → the model's own tokenizer
//! (`tokenizer.json`, Hugging Face `tokenizers`) → a BERT-style encoder → mean pooling
//! over the attention mask → L2 normalisation, as sentence-transformers computes them.
//!
//! Texts are tokenized outside the session's lock; inputs are sorted by length and run
//! in batches of at most [`BATCH`], each padded to its longest, so a long text does not
//! pad the short ones. Padding is masked out of attention and pooling, so a text's
//! vector does not depend on what it is batched with.

use std::{
    path::Path,
    sync::{Mutex, PoisonError},
};

use flownet_core::{
    InferenceOutput, InferenceRequest,
    embedding::{self, EmbeddingUsage, Embeddings},
};
use ort::{session::Session, value::TensorRef};
use tokenizers::{Tokenizer, TruncationParams};

use crate::{Error, Result, manifest::ModelManifest};

/// Most texts in one run of the model.
pub const BATCH: usize = 32;
/// The tensors a BERT-style encoder takes and gives.
pub const INPUT_IDS: &str = "input_ids";
pub const ATTENTION_MASK: &str = "attention_mask";
pub const TOKEN_TYPE_IDS: &str = "token_type_ids";

/// One embedding model's pipeline: its tokenizer, how many tokens of each text it
/// reads, and the tensors it runs.
pub struct Embedder {
    tokenizer: Tokenizer,
    /// Tokens per text, special tokens included; longer texts are cut to this.
    max_tokens: usize,
    dimensions: usize,
    output: String,
    token_types: bool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("max_tokens", &self.max_tokens)
            .field("dimensions", &self.dimensions)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// One text, tokenized.
struct Tokens {
    ids: Vec<i64>,
    types: Vec<i64>,
    truncated: bool,
}

impl Embedder {
    /// The pipeline for `manifest`: its `files.tokenizer`, `context_length` (tokens per
    /// text, default 512), inputs `input_ids` and `attention_mask` (and optionally
    /// `token_type_ids`) and one output `[N, L, D]`.
    pub(crate) fn for_manifest(manifest: &ModelManifest) -> Result<Self> {
        let unsupported = |reason: String| Error::Unsupported {
            id: manifest.id.clone(),
            reason,
        };
        let names: Vec<&str> = manifest.inputs.iter().map(|t| t.name.as_str()).collect();
        let token_types = names.contains(&TOKEN_TYPE_IDS);
        if !names.contains(&INPUT_IDS)
            || !names.contains(&ATTENTION_MASK)
            || names.len() != 2 + usize::from(token_types)
        {
            return Err(unsupported(format!(
                "an embedding model takes {INPUT_IDS}, {ATTENTION_MASK} and optionally \
                 {TOKEN_TYPE_IDS}, not {names:?}"
            )));
        }
        let output = &manifest.outputs[0];
        let dimensions = match output.shape.as_slice() {
            [_, _, d] if *d > 0 => *d as usize,
            shape => {
                return Err(unsupported(format!(
                    "output {:?} has shape {shape:?}; an embedding model returns [N, L, D]",
                    output.name
                )));
            }
        };
        let path = manifest.file_path("tokenizer").ok_or_else(|| {
            unsupported("the manifest names no tokenizer (files.tokenizer)".into())
        })?;
        let max_tokens = manifest.context_length.unwrap_or(512) as usize;
        Ok(Self {
            tokenizer: load_tokenizer(&path, max_tokens)?,
            max_tokens,
            dimensions,
            output: output.name.clone(),
            token_types,
        })
    }

    /// Embeds the texts `request` stands for (its input blob, else its prompt; see
    /// [`embedding::inputs`]) and returns the [`Embeddings`] JSON. `params.max_tokens`,
    /// which the node sets to what the task paid for, bounds the tokens read in all.
    pub(crate) fn infer(
        &self,
        model_id: &str,
        session: &Mutex<Session>,
        request: &InferenceRequest,
    ) -> Result<InferenceOutput> {
        let source = crate::params::text_input(request, "an embedding model")?;
        let texts = embedding::inputs(source).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let budget = crate::params::uint(
            &request.params,
            "max_tokens",
            1..=flownet_core::rules::MAX_TASK_UNITS,
        )?;
        let tokens = self.tokenize(&texts)?;
        let used: u64 = tokens.iter().map(|t| t.ids.len() as u64).sum();
        if let Some(budget) = budget
            && used > budget
        {
            return Err(Error::InvalidInput(format!(
                "the texts are {used} tokens; the task pays for at most {budget}"
            )));
        }

        // Shortest first, so each batch pads little; results go back in input order.
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| tokens[i].ids.len());
        let mut vectors = vec![Vec::new(); tokens.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&Tokens> = chunk.iter().map(|&i| &tokens[i]).collect();
            for (&i, v) in chunk.iter().zip(self.run(model_id, session, &batch)?) {
                vectors[i] = v;
            }
        }

        let body = Embeddings {
            model: model_id.to_owned(),
            dimensions: self.dimensions,
            embeddings: vectors,
            tokens: tokens.iter().map(|t| t.ids.len() as u64).collect(),
            truncated: tokens.iter().map(|t| t.truncated).collect(),
            usage: EmbeddingUsage {
                prompt_tokens: used,
                total_tokens: used,
            },
        };
        Ok(InferenceOutput {
            bytes: body.to_bytes(),
            mime: embedding::MIME.to_owned(),
            metadata: serde_json::json!({
                "texts": texts.len(),
                "tokens": used,
                "dimensions": self.dimensions,
                "max_tokens_per_text": self.max_tokens,
            }),
        })
    }

    /// Each text's token ids and type ids (special tokens added, cut at
    /// `max_tokens`).
    fn tokenize(&self, texts: &[String]) -> Result<Vec<Tokens>> {
        texts
            .iter()
            .map(|text| {
                let enc = self
                    .tokenizer
                    .encode(text.as_str(), true)
                    .map_err(|e| Error::InvalidInput(format!("tokenizing the text: {e}")))?;
                Ok(Tokens {
                    ids: enc.get_ids().iter().map(|&i| i64::from(i)).collect(),
                    types: enc.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
                    truncated: !enc.get_overflowing().is_empty(),
                })
            })
            .collect()
    }

    /// One run of the model over `batch`, padded to its longest text: the mean of each
    /// text's token vectors (padding left out), L2-normalised.
    fn run(
        &self,
        model_id: &str,
        session: &Mutex<Session>,
        batch: &[&Tokens],
    ) -> Result<Vec<Vec<f32>>> {
        let n = batch.len();
        let len = batch.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; n * len];
        let mut mask = vec![0i64; n * len];
        let mut types = vec![0i64; n * len];
        for (row, t) in batch.iter().enumerate() {
            let at = row * len;
            ids[at..at + t.ids.len()].copy_from_slice(&t.ids);
            types[at..at + t.types.len()].copy_from_slice(&t.types);
            mask[at..at + t.ids.len()].fill(1);
        }
        fn tensor<'a>(
            shape: [usize; 2],
            data: &'a [i64],
            name: &str,
        ) -> Result<TensorRef<'a, i64>> {
            TensorRef::from_array_view((shape, data))
                .map_err(Error::ort(format!("preparing {name}")))
        }
        let shape = [n, len];
        let mut inputs = vec![
            (INPUT_IDS, tensor(shape, &ids, INPUT_IDS)?),
            (ATTENTION_MASK, tensor(shape, &mask, ATTENTION_MASK)?),
        ];
        if self.token_types {
            inputs.push((TOKEN_TYPE_IDS, tensor(shape, &types, TOKEN_TYPE_IDS)?));
        }
        let inputs: Vec<_> = inputs
            .into_iter()
            .map(|(name, t)| {
                (
                    std::borrow::Cow::Borrowed(name),
                    ort::session::SessionInputValue::from(t),
                )
            })
            .collect();

        let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session
            .run(inputs)
            .map_err(Error::ort(format!("running {model_id}")))?;
        let output = outputs.get(&self.output).ok_or_else(|| {
            Error::Output(format!("{model_id} returned no {:?} output", self.output))
        })?;
        let (out_shape, hidden) = output
            .try_extract_tensor::<f32>()
            .map_err(Error::ort(format!("reading output {}", self.output)))?;
        let d = self.dimensions;
        if out_shape.len() != 3 || hidden.len() != n * len * d {
            return Err(Error::Output(format!(
                "{model_id} returned a {out_shape:?} tensor for {n} texts of {len} tokens; \
                 expected [{n}, {len}, {d}]"
            )));
        }
        let hidden = hidden.to_vec();
        drop(outputs);
        drop(session);

        Ok(batch
            .iter()
            .enumerate()
            .map(|(row, t)| pool(&hidden[row * len * d..(row + 1) * len * d], t.ids.len(), d))
            .collect())
    }
}

/// How many tokens each of `texts` takes under the tokenizer of the embedding model
/// `manifest` names (cut at its `context_length`, as the model reads them): what a
/// requester recounts an embedding task's stated tokens with. Only the tokenizer is
/// loaded.
pub fn count_tokens(manifest: &ModelManifest, texts: &[String]) -> Result<Vec<u64>> {
    if manifest.kind != flownet_core::TaskKind::Embedding {
        return Err(Error::Unsupported {
            id: manifest.id.clone(),
            reason: "not an embedding model".into(),
        });
    }
    let path = manifest
        .file_path("tokenizer")
        .ok_or_else(|| Error::Unsupported {
            id: manifest.id.clone(),
            reason: "the manifest names no tokenizer (files.tokenizer)".into(),
        })?;
    let max_tokens = manifest.context_length.unwrap_or(512) as usize;
    let tokenizer = load_tokenizer(&path, max_tokens)?;
    texts
        .iter()
        .map(|t| {
            tokenizer
                .encode(t.as_str(), true)
                .map(|e| e.get_ids().len() as u64)
                .map_err(|e| Error::InvalidInput(format!("tokenizing the text: {e}")))
        })
        .collect()
}

/// The mean of the first `tokens` rows of `hidden` (`[L, d]`), L2-normalised (a zero
/// vector stays zero), computed in `f64`.
fn pool(hidden: &[f32], tokens: usize, d: usize) -> Vec<f32> {
    let mut sum = vec![0f64; d];
    for row in hidden.chunks(d).take(tokens) {
        for (s, x) in sum.iter_mut().zip(row) {
            *s += f64::from(*x);
        }
    }
    let count = tokens.max(1) as f64;
    let mean: Vec<f64> = sum.into_iter().map(|s| s / count).collect();
    let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    mean.into_iter().map(|x| (x / norm) as f32).collect()
}

/// `path`'s tokenizer, cutting each text at `max_tokens` tokens and padding nothing
/// (batches are padded here).
fn load_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer> {
    let bad = |message: String| Error::manifest(path, message);
    let mut tokenizer =
        Tokenizer::from_file(path).map_err(|e| bad(format!("not a tokenizer.json: {e}")))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            ..TruncationParams::default()
        }))
        .map_err(|e| bad(format!("setting truncation: {e}")))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_the_real_tokens_and_normalises() {
        // Two real tokens and one pad row that must not count.
        let hidden = [1.0, 0.0, 3.0, 4.0, 100.0, 100.0];
        let v = pool(&hidden, 2, 2);
        // The mean is (2, 2), of norm √8.
        let expected = [2.0f64 / 8f64.sqrt(), 2.0 / 8f64.sqrt()];
        assert!((f64::from(v[0]) - expected[0]).abs() < 1e-7, "{v:?}");
        assert!((f64::from(v[1]) - expected[1]).abs() < 1e-7, "{v:?}");
        assert_eq!(pool(&[0.0, 0.0], 1, 2), vec![0.0, 0.0]);
    }
}
