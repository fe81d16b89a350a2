//! The ports: what the adapter crates implement for the core. [`Ledger`] is chain
//! access (flownet-chain), [`Engine`] runs models (flownet-infer), [`BlobStore`] keeps
//! outputs by content address.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    Account, Address, Digest32, Globals, LedgerConfig, LedgerId, Node, OutputNft, OutputRef,
    Rating, Result, SignedEnvelope, Task, TaskId, TaskStatus, Timestamp, rules::Outcome,
};

/// A ledger's identity and state at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerInfo {
    pub id: LedgerId,
    /// `embedded`, `emulator`, `testnet`, `mainnet`, …
    pub network: String,
    pub config: LedgerConfig,
    /// The ledger's clock: the time the next action would be applied at.
    pub now: Timestamp,
    /// Envelopes applied so far.
    pub height: u64,
    pub globals: Globals,
}

/// What the ledger says after applying an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub hash: Digest32,
    pub signer: Address,
    pub sequence: u64,
    pub action: String,
    pub outcome: Outcome,
    pub at: Timestamp,
    pub height: u64,
}

/// Which tasks to list; unset fields match everything. Results come in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskQuery {
    pub node: Option<Address>,
    pub requester: Option<Address>,
    pub status: Option<TaskStatus>,
    /// Only tasks with a larger id.
    pub after: Option<TaskId>,
    pub limit: Option<u32>,
}

/// Chain access: send signed envelopes, read state. Implemented by the embedded ledger
/// and by the Flow client.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn info(&self) -> Result<LedgerInfo>;
    /// Authenticates and applies an envelope; a rejection is an error whose kind says
    /// which rule refused it.
    async fn send(&self, envelope: SignedEnvelope) -> Result<Receipt>;
    async fn account(&self, address: Address) -> Result<Option<Account>>;
    async fn node(&self, owner: Address) -> Result<Option<Node>>;
    /// Every node, best first: score, then lowest price of any offer, then address.
    async fn nodes(&self) -> Result<Vec<Node>>;
    async fn task(&self, id: TaskId) -> Result<Option<Task>>;
    async fn tasks(&self, query: TaskQuery) -> Result<Vec<Task>>;
    async fn ratings(&self, task: TaskId) -> Result<Vec<Rating>>;
    async fn nfts(&self, owner: Address) -> Result<Vec<OutputNft>>;

    /// How many tasks are in each status (every status listed, zeros included).
    /// The default lists the tasks; ledgers that can count without reading
    /// each task override it.
    async fn task_counts(&self) -> Result<Vec<(TaskStatus, u64)>> {
        let mut out = Vec::with_capacity(TaskStatus::ALL.len());
        for status in TaskStatus::ALL {
            let n = self
                .tasks(TaskQuery {
                    status: Some(status),
                    ..TaskQuery::default()
                })
                .await?
                .len();
            out.push((status, n as u64));
        }
        Ok(out)
    }
}

/// What kind of inference a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    TextToImage,
    ImageClassification,
    TextGeneration,
    Embedding,
}

impl TaskKind {
    /// Whether the task's prompt names an input image (`sha256:<hex>`) rather than text.
    pub fn takes_image(self) -> bool {
        matches!(self, Self::ImageClassification)
    }

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TextToImage => "text-to-image",
            Self::ImageClassification => "image-classification",
            Self::TextGeneration => "text-generation",
            Self::Embedding => "embedding",
        }
    }
}

/// A model an engine serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub kind: TaskKind,
    pub name: String,
    pub weights_sha256: Digest32,
    pub output_mime: String,
    /// How the prompt and params become the model's input, honestly stated.
    pub prompt_mapping: String,
    pub defaults: serde_json::Value,
}

/// One inference.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceRequest {
    pub model_id: String,
    pub prompt: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The input image's bytes, for models that take one.
    pub input: Option<Vec<u8>>,
}

/// An inference's result.
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceOutput {
    pub bytes: Vec<u8>,
    pub mime: String,
    /// What the engine wants to say about the run (seed, labels, timings…).
    pub metadata: serde_json::Value,
}

/// Runs models. Implementations load each model once and reuse it.
#[async_trait]
pub trait Engine: Send + Sync {
    fn models(&self) -> Vec<ModelInfo>;
    async fn infer(&self, request: InferenceRequest) -> Result<InferenceOutput>;
}

/// Content-addressed storage for outputs and inputs, plus the node's delivery journal
/// (kept beside the blobs so a node that crashes between storing an output and being
/// paid for it resumes without running the model again).
pub trait BlobStore: Send + Sync {
    /// Stores bytes under their SHA-256 and returns it.
    fn put(&self, bytes: &[u8]) -> Result<Digest32>;
    /// The bytes stored under `sha256`, if any.
    fn get(&self, sha256: &Digest32) -> Result<Option<Vec<u8>>>;
    /// Records that `task`'s output is stored and described by `output`.
    fn record_delivery(&self, task: TaskId, output: &OutputRef) -> Result<()>;
    /// The recorded delivery of `task`, if any.
    fn delivery(&self, task: TaskId) -> Result<Option<OutputRef>>;
}
