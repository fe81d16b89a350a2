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
/// What [`Ledger::changed`] returns: resolves once the ledger has applied another
/// envelope.
pub type LedgerChange = futures::future::BoxFuture<'static, ()>;

#[async_trait]
pub trait Ledger: Send + Sync {
    async fn info(&self) -> Result<LedgerInfo>;
    /// Authenticates and applies an envelope; a rejection is an error whose kind says
    /// which rule refused it.
    async fn send(&self, envelope: SignedEnvelope) -> Result<Receipt>;
    async fn account(&self, address: Address) -> Result<Option<Account>>;
    async fn node(&self, owner: Address) -> Result<Option<Node>>;
    /// Every node, best first ([`crate::rank_nodes`]): rank key (the score times the
    /// reliability's lower bound), then lowest price of any offer, then address.
    async fn nodes(&self) -> Result<Vec<Node>>;
    async fn task(&self, id: TaskId) -> Result<Option<Task>>;
    async fn tasks(&self, query: TaskQuery) -> Result<Vec<Task>>;
    async fn ratings(&self, task: TaskId) -> Result<Vec<Rating>>;
    async fn nfts(&self, owner: Address) -> Result<Vec<OutputNft>>;

    /// A future that resolves once this ledger has applied another envelope sent
    /// through it in this process: waiters (a node looking for tasks, a gateway
    /// following one) wake at once instead of at their next poll. The default never
    /// resolves, for ledgers that cannot tell (Flow). A hint only: another process may
    /// write the same ledger, so callers keep polling too. Subscribe before reading the
    /// state the wait is about, so a change in between is not missed.
    fn changed(&self) -> LedgerChange {
        Box::pin(std::future::pending())
    }

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

/// Fetches a task's input from the holder its requester named (the requester's
/// gateway or blob server) or, where the runtime has one, from IPFS by the input's CID.
/// Implemented over HTTP by the node runtime; the worker checks every byte against the
/// ledger's hash and size.
#[async_trait]
pub trait InputFetcher: Send + Sync {
    /// The bytes of `input` (at its `uri`): an error if no source has them, a source
    /// answers with an error, or sends more than `max_bytes`.
    async fn fetch(&self, input: &crate::InputRef, max_bytes: u64) -> Result<Vec<u8>>;
}

/// Where a node publishes the chunks of the answers it streams, for followers (its
/// HTTP server's task streams). Implemented by the node runtime.
pub trait TaskStreams: Send + Sync {
    /// A run of `task` begins: whatever an earlier, failed run sent is void.
    fn start(&self, task: TaskId);
    /// The next chunk of `task`'s answer; the last is a `Done`.
    fn chunk(&self, task: TaskId, chunk: StreamChunk);
}

/// What kind of inference a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    TextToImage,
    ImageClassification,
    TextGeneration,
    Embedding,
    /// Reading the text in an image (optical character recognition).
    Ocr,
    /// Speaking a text aloud: the output is audio.
    TextToSpeech,
}

impl TaskKind {
    /// Whether the task's prompt names an input image (`sha256:<hex>`) rather than text.
    pub fn takes_image(self) -> bool {
        matches!(self, Self::ImageClassification | Self::Ocr)
    }

    /// What a node's price for a model of this kind pays for: a language model's
    /// output and an embedding model's input are metered per 1,000 tokens, every other
    /// kind's is one task.
    pub fn price_unit(self) -> crate::PriceUnit {
        match self {
            Self::TextGeneration | Self::Embedding => crate::PriceUnit::ThousandTokens,
            _ => crate::PriceUnit::Task,
        }
    }

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TextToImage => "text-to-image",
            Self::ImageClassification => "image-classification",
            Self::TextGeneration => "text-generation",
            Self::Embedding => "embedding",
            Self::Ocr => "ocr",
            Self::TextToSpeech => "text-to-speech",
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

    /// Runs one inference and hands each [`StreamChunk`] to `sink` as it is made. An
    /// engine that streams (text generation) makes its output as the [`GenerationFold`]
    /// of exactly the chunks it sent, so what a follower saw and what is stored cannot
    /// differ. Dropping the future cancels the run where the engine can stop early.
    ///
    /// The default sends no chunks and returns [`Engine::infer`]'s output: engines whose
    /// outputs come whole (images, labels) need nothing else.
    async fn infer_stream(
        &self,
        request: InferenceRequest,
        sink: &(dyn Fn(StreamChunk) + Send + Sync),
    ) -> Result<InferenceOutput> {
        let _ = sink;
        self.infer(request).await
    }
}

/// Why text generation ended, in OpenAI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn or a stop string appeared.
    Stop,
    /// `max_tokens` tokens were generated.
    Length,
}

impl FinishReason {
    /// The snake-case name (`stop`, `length`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// Tokens a generation read and wrote, under the model's own tokenizer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One piece of a streamed text generation. A stream is any number of `Text` chunks
/// followed by exactly one `Done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamChunk {
    /// Text to append to the answer: whole UTF-8 characters, never part of one.
    Text { text: String },
    /// The last chunk: why generation ended and the tokens it took.
    Done {
        finish_reason: FinishReason,
        usage: Usage,
    },
}

/// A whole text generation: the fold of its [`StreamChunk`]s, and the JSON body of a
/// text-generation output (`{"text", "finish_reason", "usage": {"prompt_tokens",
/// "completion_tokens"}}`, MIME [`Generation::MIME`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

impl Generation {
    /// The MIME type of a text-generation output's bytes.
    pub const MIME: &'static str = "application/json";

    /// The output's bytes: compact JSON with the fields in declaration order, so equal
    /// generations give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a generation always serialises")
    }

    /// Reads an output's bytes back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| crate::Error::InvalidInput(format!("not a text-generation output: {e}")))
    }

    /// The chunks that fold into this generation: its text in one chunk (none when
    /// empty), then `Done`. For engines that make the text whole and stream it after.
    pub fn chunks(&self) -> Vec<StreamChunk> {
        let text = (!self.text.is_empty()).then(|| StreamChunk::Text {
            text: self.text.clone(),
        });
        text.into_iter()
            .chain(std::iter::once(StreamChunk::Done {
                finish_reason: self.finish_reason,
                usage: self.usage,
            }))
            .collect()
    }
}

/// Folds [`StreamChunk`]s into a [`Generation`]: the one code that turns a stream into
/// the stored answer, used by engines for their output and by followers for what they
/// received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenerationFold {
    text: String,
    done: Option<(FinishReason, Usage)>,
}

impl GenerationFold {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk. Anything after `Done` is an error: a stream has one end.
    pub fn push(&mut self, chunk: &StreamChunk) -> Result<()> {
        if self.done.is_some() {
            return Err(crate::Error::Inference(
                "a stream chunk came after the final one".into(),
            ));
        }
        match chunk {
            StreamChunk::Text { text } => self.text.push_str(text),
            StreamChunk::Done {
                finish_reason,
                usage,
            } => self.done = Some((*finish_reason, *usage)),
        }
        Ok(())
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the final chunk has come.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// The generation, once the final chunk has come.
    pub fn finish(self) -> Result<Generation> {
        let (finish_reason, usage) = self.done.ok_or_else(|| {
            crate::Error::Inference("the stream ended without its final chunk".into())
        })?;
        Ok(Generation {
            text: self.text,
            finish_reason,
            usage,
        })
    }

    /// Folds a whole stream.
    pub fn fold<'a>(chunks: impl IntoIterator<Item = &'a StreamChunk>) -> Result<Generation> {
        let mut fold = Self::new();
        for chunk in chunks {
            fold.push(chunk)?;
        }
        fold.finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> StreamChunk {
        StreamChunk::Text { text: t.into() }
    }

    const DONE: StreamChunk = StreamChunk::Done {
        finish_reason: FinishReason::Length,
        usage: Usage {
            prompt_tokens: 7,
            completion_tokens: 3,
        },
    };

    #[test]
    fn fold_concatenates_text_and_takes_the_final_chunk() {
        let chunks = [text("The capital"), text(" is "), text("Paris."), DONE];
        let generation = GenerationFold::fold(&chunks).unwrap();
        assert_eq!(generation.text, "The capital is Paris.");
        assert_eq!(generation.finish_reason, FinishReason::Length);
        assert_eq!(generation.usage.completion_tokens, 3);
        assert_eq!(
            String::from_utf8(generation.to_bytes()).unwrap(),
            r#"{"text":"The capital is Paris.","finish_reason":"length","usage":{"prompt_tokens":7,"completion_tokens":3}}"#
        );
        assert_eq!(
            Generation::from_bytes(&generation.to_bytes()).unwrap(),
            generation
        );
        // A generation's own chunks fold back into it.
        assert_eq!(
            GenerationFold::fold(&generation.chunks()).unwrap(),
            generation
        );
    }

    #[test]
    fn a_stream_has_exactly_one_end() {
        let msg = GenerationFold::fold(&[text("a")]).unwrap_err().to_string();
        assert!(msg.contains("without its final chunk"), "{msg}");
        let msg = GenerationFold::fold(&[DONE, text("a")])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("after the final one"), "{msg}");
        let empty = GenerationFold::fold(&[DONE]).unwrap();
        assert_eq!(empty.text, "");
        assert_eq!(empty.chunks(), vec![DONE]);
    }

    #[test]
    fn chunks_serialise_with_a_type_tag() {
        assert_eq!(
            serde_json::to_string(&text("hi")).unwrap(),
            r#"{"type":"text","text":"hi"}"#
        );
        assert_eq!(
            serde_json::to_string(&DONE).unwrap(),
            r#"{"type":"done","finish_reason":"length","usage":{"prompt_tokens":7,"completion_tokens":3}}"#
        );
    }

    struct Whole;

    #[async_trait]
    impl Engine for Whole {
        fn models(&self) -> Vec<ModelInfo> {
            Vec::new()
        }
        async fn infer(&self, _: InferenceRequest) -> Result<InferenceOutput> {
            Ok(InferenceOutput {
                bytes: b"whole".to_vec(),
                mime: "text/plain".into(),
                metadata: serde_json::Value::Null,
            })
        }
    }

    #[tokio::test]
    async fn the_default_stream_is_the_whole_output_and_no_chunks() {
        let seen = std::sync::Mutex::new(Vec::new());
        let request = InferenceRequest {
            model_id: "m".into(),
            prompt: String::new(),
            params: serde_json::Map::new(),
            input: None,
        };
        let output = Whole
            .infer_stream(request, &|c| seen.lock().unwrap().push(c))
            .await
            .unwrap();
        assert_eq!(output.bytes, b"whole");
        assert!(seen.lock().unwrap().is_empty());
    }
}
