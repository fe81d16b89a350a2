//! Embeddings: what an embedding task's prompt stands for, the most tokens it can take
//! (what a requester escrows for), and the JSON output every embedding node writes.
//!
//! An embedding model is paid per 1,000 input tokens. A requester cannot count the
//! model's tokens without its tokenizer, but it can bound them: a WordPiece or BPE
//! token covers at least one byte of the text, so an input of `n` UTF-8 bytes is at
//! most `n` tokens plus the model's special tokens ([`SPECIAL_TOKENS_BOUND`]). The
//! requester escrows that bound; the node states the tokens it embedded and the rest
//! comes back in the same action.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The MIME type of an embedding output.
pub const MIME: &str = "application/json";
/// Most texts one embedding task takes.
pub const MAX_INPUTS: usize = 256;
/// Tokens a model adds to each input beyond its text (BERT's `[CLS]` and `[SEP]`,
/// a BPE model's begin and end markers), at most.
pub const SPECIAL_TOKENS_BOUND: u64 = 2;

/// The texts an embedding prompt (or input blob) stands for: a JSON object
/// `{"input": "text"}` or `{"input": ["text", ...]}` is those texts; any other prompt
/// is one text, itself. Empty texts, an empty list, more than [`MAX_INPUTS`] texts or
/// an `input` that is not text are refused, saying which.
pub fn inputs(source: &str) -> Result<Vec<String>> {
    let parsed = source
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<serde_json::Value>(source).ok())
        .flatten();
    let texts = match parsed {
        Some(serde_json::Value::Object(map)) if map.contains_key("input") => match &map["input"] {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "input[{i}] is not a string: an embedding input is text"
                        ))
                    })
                })
                .collect::<Result<_>>()?,
            _ => {
                return Err(Error::InvalidInput(
                    "`input` must be a string or a list of strings".into(),
                ));
            }
        },
        _ => vec![source.to_owned()],
    };
    check_texts(&texts)?;
    Ok(texts)
}

/// The prompt (or input blob) that stands for `texts`: the text itself when there is
/// one that [`inputs`] reads back as itself, else `{"input": [...]}`.
pub fn prompt_for(texts: &[String]) -> Result<String> {
    check_texts(texts)?;
    if let [one] = texts
        && inputs(one).ok().as_deref() == Some(texts)
    {
        return Ok(one.clone());
    }
    Ok(serde_json::json!({ "input": texts }).to_string())
}

fn check_texts(texts: &[String]) -> Result<()> {
    if texts.is_empty() {
        return Err(Error::InvalidInput(
            "no text to embed: `input` is an empty list".into(),
        ));
    }
    if texts.len() > MAX_INPUTS {
        return Err(Error::InvalidInput(format!(
            "{} texts to embed: one task takes at most {MAX_INPUTS}",
            texts.len()
        )));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err(Error::InvalidInput(if texts.len() == 1 {
            "the text to embed is empty".to_owned()
        } else {
            format!("input[{i}] is empty: every text to embed needs some text")
        }));
    }
    Ok(())
}

/// The most tokens `texts` can be for any tokenizer that gives each token at least one
/// byte of text: each text's UTF-8 length plus [`SPECIAL_TOKENS_BOUND`], at most
/// `max_per_input` each where the model truncates there, and at most
/// [`crate::rules::MAX_TASK_UNITS`] in all. What a requester escrows for.
pub fn max_units(texts: &[String], max_per_input: Option<u64>) -> u64 {
    let total: u64 = texts
        .iter()
        .map(|t| {
            let bound = t.len() as u64 + SPECIAL_TOKENS_BOUND;
            max_per_input.map_or(bound, |m| bound.min(m))
        })
        .sum();
    total.clamp(1, crate::rules::MAX_TASK_UNITS)
}

/// Tokens an embedding run read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Every token embedded, special tokens included; what the task is paid for.
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// An embedding output (MIME [`MIME`]): one vector per input text in order, the tokens
/// each text took (after truncation) and whether it was cut to fit the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embeddings {
    pub model: String,
    pub dimensions: usize,
    pub embeddings: Vec<Vec<f32>>,
    pub tokens: Vec<u64>,
    pub truncated: Vec<bool>,
    pub usage: EmbeddingUsage,
}

impl Embeddings {
    /// The output's bytes: compact JSON, each `f32` written in the shortest form that
    /// reads back as the same `f32`.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("embeddings serialise")
    }

    /// Reads an output's bytes back, checking that the parts agree.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let e: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidInput(format!("not an embedding output: {e}")))?;
        let n = e.embeddings.len();
        if e.tokens.len() != n
            || e.truncated.len() != n
            || e.embeddings.iter().any(|v| v.len() != e.dimensions)
            || e.tokens.iter().sum::<u64>() != e.usage.prompt_tokens
        {
            return Err(Error::InvalidInput(
                "not an embedding output: its vectors, token counts and usage disagree".into(),
            ));
        }
        Ok(e)
    }
}

/// The cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_plain_prompt_is_one_text_and_an_input_object_is_a_batch() {
        assert_eq!(inputs("hello world").unwrap(), s(&["hello world"]));
        assert_eq!(inputs(r#"{"input": "a"}"#).unwrap(), s(&["a"]));
        assert_eq!(
            inputs(r#"{"input": ["a", "b c"]}"#).unwrap(),
            s(&["a", "b c"])
        );
        // JSON that is not an input object is text like any other.
        assert_eq!(inputs(r#"{"a": 1}"#).unwrap(), s(&[r#"{"a": 1}"#]));
        assert_eq!(inputs("[1, 2]").unwrap(), s(&["[1, 2]"]));
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let err = |p: &str| inputs(p).unwrap_err().to_string();
        assert!(err("").contains("empty"), "{}", err(""));
        assert!(err("   ").contains("empty"));
        assert!(err(r#"{"input": []}"#).contains("empty list"));
        assert!(err(r#"{"input": ["a", ""]}"#).contains("input[1] is empty"));
        assert!(err(r#"{"input": ["a", 3]}"#).contains("input[1] is not a string"));
        assert!(err(r#"{"input": 3}"#).contains("a string or a list"));
        let many = serde_json::json!({ "input": vec!["x"; MAX_INPUTS + 1] }).to_string();
        assert!(err(&many).contains("at most 256"));
    }

    #[test]
    fn prompts_read_back_as_their_texts() {
        for texts in [
            s(&["one sentence"]),
            s(&["a", "b"]),
            s(&[r#"{"input": "tricky"}"#]),
            s(&["  {\"input\": [\"x\"]}"]),
        ] {
            let prompt = prompt_for(&texts).unwrap();
            assert_eq!(inputs(&prompt).unwrap(), texts, "{prompt}");
        }
        assert_eq!(prompt_for(&s(&["plain"])).unwrap(), "plain");
        assert!(prompt_for(&[]).is_err());
    }

    #[test]
    fn the_bound_counts_bytes_and_special_tokens_within_the_cap() {
        assert_eq!(max_units(&s(&["abc"]), None), 5);
        // "é" is two bytes; a Hangul syllable three (it decomposes into up to 3 jamo).
        assert_eq!(max_units(&s(&["é", "한"]), None), 4 + 5);
        assert_eq!(max_units(&s(&[&"x".repeat(1000)]), Some(256)), 256);
        assert_eq!(
            max_units(&s(&["ab", &"x".repeat(1000)]), Some(256)),
            4 + 256
        );
        assert_eq!(max_units(&[], None), 1);
    }

    #[test]
    fn outputs_round_trip_and_inconsistent_ones_are_refused() {
        let e = Embeddings {
            model: "m".into(),
            dimensions: 2,
            embeddings: vec![vec![0.6, 0.8], vec![1.0, 0.0]],
            tokens: vec![3, 4],
            truncated: vec![false, false],
            usage: EmbeddingUsage {
                prompt_tokens: 7,
                total_tokens: 7,
            },
        };
        assert_eq!(Embeddings::from_bytes(&e.to_bytes()).unwrap(), e);
        let mut bad = e.clone();
        bad.usage.prompt_tokens = 8;
        assert!(Embeddings::from_bytes(&bad.to_bytes()).is_err());
        let mut bad = e.clone();
        bad.embeddings[1].push(0.0);
        assert!(Embeddings::from_bytes(&bad.to_bytes()).is_err());
        assert!((cosine(&e.embeddings[0], &e.embeddings[1]) - 0.6).abs() < 1e-7);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
