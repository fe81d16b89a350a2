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
    judge(
        task,
        || {
            local_model(task, models_dir, |m| {
                m.format() == ModelFormat::Gguf && m.weights_path().exists()
            })
            .map(|m| flownet_infer::count_tokens(&m, &answer.text))
        },
        || format!("no GGUF of {}", task.model_id),
        models_dir,
        answer.usage.completion_tokens,
        "by the answer's own usage",
    )
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
    judge(
        task,
        || {
            local_model(task, models_dir, |m| m.kind == TaskKind::Embedding).map(|m| {
                flownet_infer::embed::count_tokens(&m, texts).map(|c| c.iter().sum::<u64>())
            })
        },
        || format!("no embedding model {}", task.model_id),
        models_dir,
        out.usage.prompt_tokens,
        "by the output's own usage",
    )
}

/// The manifest in `models_dir` of `task`'s model with the task's weights, when it is
/// there and `usable`.
fn local_model(
    task: &Task,
    models_dir: &Path,
    usable: impl Fn(&flownet_infer::ModelManifest) -> bool,
) -> Option<flownet_infer::ModelManifest> {
    crate::manifests(models_dir).ok().and_then(|all| {
        all.into_iter()
            .find(|m| m.id == task.model_id && m.sha256 == task.weights_sha256 && usable(m))
    })
}

/// The verdict on the units `task` was paid for: against `count()` (the local model's
/// recount, when there is one to ask; called only for a settled metered task), else
/// against `said`, what the output itself says it used (`by` names that source); both
/// capped at the task's `max_units`.
fn judge(
    task: &Task,
    count: impl FnOnce() -> Option<flownet_infer::Result<u64>>,
    missing: impl FnOnce() -> String,
    models_dir: &Path,
    said: u64,
    by: &'static str,
) -> UnitsCheck {
    let Some(stated) = task.units else {
        return UnitsCheck::Unchecked {
            reason: "the task is not paid per token, or not fulfilled".into(),
        };
    };
    match count() {
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
            let reason = match other {
                Some(Err(e)) => format!("the local copy of the model cannot count: {e}"),
                _ => format!(
                    "{} with weights {} in {}",
                    missing(),
                    task.weights_sha256,
                    models_dir.display()
                ),
            };
            let said = said.min(task.max_units);
            if said == stated {
                UnitsCheck::Unchecked { reason }
            } else {
                UnitsCheck::Differs {
                    stated,
                    counted: said,
                    how: by,
                }
            }
        }
    }
}
