//! The requester's check of a metered answer: the node states how many tokens it
//! wrote and is paid for them; the requester's side recounts the delivered text with
//! the model's own tokenizer, when it holds the same GGUF (by weights SHA-256), and
//! says so when the count differs.

use std::path::Path;

use flownet_core::{Embeddings, Generation, Task, TaskKind};
use flownet_infer::ModelFormat;

/// What recounting a delivered answer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitsCheck {
    /// The stated count is the answer's token count under the model's tokenizer.
    Matches { units: u64 },
    /// The node was paid for `stated` tokens; the answer is `counted` (capped at the
    /// task's max_tokens).
    Differs {
        stated: u64,
        counted: u64,
        how: &'static str,
    },
    /// Not recounted with the tokenizer (the reason says why); the answer's own usage
    /// agrees with what was paid.
    Unchecked { reason: String },
}

impl UnitsCheck {
    /// A line for people when something is worth saying (a mismatch), else `None`.
    pub fn warning(&self, node: impl std::fmt::Display) -> Option<String> {
        match self {
            Self::Differs {
                stated,
                counted,
                how,
            } => Some(format!(
                "warning: node {node} was paid for {stated} tokens, but the answer is \
                 {counted} tokens {how}"
            )),
            _ => None,
        }
    }

    /// The check as JSON: `{"units_check": "matches" | "differs" | "unchecked", ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Matches { units } => {
                serde_json::json!({ "result": "matches", "counted": units, "by": "tokenizer" })
            }
            Self::Differs {
                stated,
                counted,
                how,
            } => {
                serde_json::json!({ "result": "differs", "stated": stated, "counted": counted, "by": how })
            }
            Self::Unchecked { reason } => {
                serde_json::json!({ "result": "unchecked", "reason": reason })
            }
        }
    }
}

/// Recounts `answer`, task `task`'s delivered output, against the units the node
/// stated: with the tokenizer of a GGUF in `models_dir` whose id and weights match the
/// task's, else only against the answer's own usage. Blocking (the first call for a
/// model hashes its weights); a task that is not metered or not settled is `Unchecked`.
pub fn check_units(task: &Task, answer: &Generation, models_dir: &Path) -> UnitsCheck {
    let Some(stated) = task.units else {
        return UnitsCheck::Unchecked {
            reason: "the task is not paid per token, or not fulfilled".into(),
        };
    };
    let local = crate::manifests(models_dir).ok().and_then(|all| {
        all.into_iter().find(|m| {
            m.id == task.model_id
                && m.sha256 == task.weights_sha256
                && m.format() == ModelFormat::Gguf
                && m.weights_path().exists()
        })
    });
    let counted = local
        .as_ref()
        .map(|m| flownet_infer::count_tokens(m, &answer.text));
    match counted {
        Some(Ok(n)) => {
            let counted = n.min(task.max_units);
            if counted == stated {
                UnitsCheck::Matches { units: stated }
            } else {
                UnitsCheck::Differs {
                    stated,
                    counted,
                    how: "under the model's tokenizer",
                }
            }
        }
        other => {
            let why = match other {
                Some(Err(e)) => format!("the local copy of the model cannot count: {e}"),
                _ => format!(
                    "no GGUF of {} with weights {} in {}",
                    task.model_id,
                    task.weights_sha256,
                    models_dir.display()
                ),
            };
            let said = answer.usage.completion_tokens.min(task.max_units);
            if said == stated {
                UnitsCheck::Unchecked { reason: why }
            } else {
                UnitsCheck::Differs {
                    stated,
                    counted: said,
                    how: "by the answer's own usage",
                }
            }
        }
    }
}

/// Recounts an embedding task's stated tokens: `texts` (what the requester sent) under
/// the tokenizer of the embedding model in `models_dir` whose id and weights match the
/// task's, else against the output's own token counts.
pub fn check_embedding_units(
    task: &Task,
    texts: &[String],
    out: &Embeddings,
    models_dir: &Path,
) -> UnitsCheck {
    let Some(stated) = task.units else {
        return UnitsCheck::Unchecked {
            reason: "the task is not paid per token, or not fulfilled".into(),
        };
    };
    let local = crate::manifests(models_dir).ok().and_then(|all| {
        all.into_iter().find(|m| {
            m.id == task.model_id
                && m.sha256 == task.weights_sha256
                && m.kind == TaskKind::Embedding
        })
    });
    match local.map(|m| flownet_infer::embed::count_tokens(&m, texts)) {
        Some(Ok(counts)) => {
            let counted = counts.iter().sum::<u64>().min(task.max_units);
            if counted == stated {
                UnitsCheck::Matches { units: stated }
            } else {
                UnitsCheck::Differs {
                    stated,
                    counted,
                    how: "under the model's tokenizer",
                }
            }
        }
        other => {
            let reason = match other {
                Some(Err(e)) => format!("the local copy of the model cannot count: {e}"),
                _ => format!(
                    "no embedding model {} with weights {} in {}",
                    task.model_id,
                    task.weights_sha256,
                    models_dir.display()
                ),
            };
            let said = out.usage.prompt_tokens.min(task.max_units);
            if said == stated {
                UnitsCheck::Unchecked { reason }
            } else {
                UnitsCheck::Differs {
                    stated,
                    counted: said,
                    how: "by the output's own usage",
                }
            }
        }
    }
}
