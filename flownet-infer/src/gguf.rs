//! GGUF language models run by llama.cpp (through `llama-cpp-2`): chat template,
//! tokenizer and weights all come from the one GGUF file.

use std::{
    num::NonZeroU32,
    sync::{Mutex, OnceLock, PoisonError},
    time::Instant,
};

use flownet_core::{
    FinishReason, GenerationFold, InferenceOutput, InferenceRequest, StreamChunk, Usage,
};
use llama_cpp_2::{
    context::params::LlamaContextParams,
    llama_backend::LlamaBackend,
    llama_batch::LlamaBatch,
    model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel, params::LlamaModelParams},
    sampling::LlamaSampler,
};
use serde_json::json;

use crate::{
    Error, ExecutionProvider, Result,
    chat::{self, PENALTY_WINDOW, Sampling, TextStream},
    manifest::ModelManifest,
};

/// The manifest's `chat_template` value that means "the template in the GGUF file's
/// metadata" (also what an absent `chat_template` means).
pub const TEMPLATE_FROM_METADATA: &str = "gguf-metadata";

/// Tokens the prompt is fed in per decode call.
const BATCH: usize = 512;

/// The KV cache is sized to the request, rounded up to this many tokens.
const CONTEXT_STEP: u32 = 256;

/// llama.cpp's process-wide state, made once; its logs go to `tracing`.
fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::llama("starting llama.cpp", e))
}

/// A run for a model's own thread.
type Job = Box<dyn FnOnce() + Send>;

/// What a model's thread sends back.
enum Ran {
    Chunk(StreamChunk),
    Done(Result<InferenceOutput>),
}

/// The tokens `text` is under `model`'s tokenizer: no BOS, special tokens as text.
fn count_text(model: &LlamaModel, text: &str) -> u64 {
    model.vocab().tokenize(text.as_bytes(), false, false).len() as u64
}

/// How many tokens `text` is under the tokenizer of the GGUF model `manifest` names
/// (its weights checked against the manifest's SHA-256 once per process): what a
/// requester recounts a delivered answer with. Only the vocabulary is loaded.
pub fn count_tokens(manifest: &ModelManifest, text: &str) -> Result<u64> {
    type Vocabs = Mutex<std::collections::HashMap<std::path::PathBuf, std::sync::Arc<LlamaModel>>>;
    static VOCABS: OnceLock<Vocabs> = OnceLock::new();
    if manifest.format() != crate::ModelFormat::Gguf {
        return Err(Error::Unsupported {
            id: manifest.id.clone(),
            reason: "only GGUF language models have a tokenizer to count with".into(),
        });
    }
    let path = manifest.weights_path();
    let vocabs = VOCABS.get_or_init(Default::default);
    let cached = vocabs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&path)
        .cloned();
    let model = match cached {
        Some(m) => m,
        None => {
            drop(manifest.verify_weights()?);
            let params = LlamaModelParams::default()
                .with_n_gpu_layers(0)
                .with_vocab_only(true);
            let model = std::sync::Arc::new(
                LlamaModel::load_from_file(backend()?, &path, &params)
                    .map_err(|e| Error::llama(format!("loading {}", path.display()), e))?,
            );
            vocabs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(path, model.clone());
            model
        }
    };
    Ok(count_text(&model, text))
}

/// A GGUF text-generation model, loaded once; each request gets its own context.
pub(crate) struct GgufModel {
    id: String,
    model: LlamaModel,
    template: LlamaChatTemplate,
    context_length: u32,
    threads: i32,
    defaults: serde_json::Value,
    /// The one thread this model's runs are made on (started with the first run).
    runs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    /// Requests run one at a time: llama.cpp's context creation mutates the model, and
    /// two generations on the node's cores would only slow each other down.
    gate: Mutex<()>,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel")
            .field("id", &self.id)
            .field("context_length", &self.context_length)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl GgufModel {
    /// Checks the weights against the manifest's SHA-256 and loads them.
    pub(crate) fn load(
        manifest: &ModelManifest,
        threads: usize,
        provider: ExecutionProvider,
    ) -> Result<Self> {
        let backend = backend()?;
        // Hashing reads the file once; llama.cpp then maps the same file.
        drop(manifest.verify_weights()?);
        let path = manifest.weights_path();
        let mut params = LlamaModelParams::default().with_n_gpu_layers(0);
        match provider {
            ExecutionProvider::Cpu => {}
            ExecutionProvider::Cuda { device_id } => {
                if cfg!(feature = "cuda") {
                    params = params.with_n_gpu_layers(u32::MAX).with_main_gpu(device_id);
                } else {
                    tracing::warn!(
                        model = %manifest.id,
                        "built without the `cuda` feature; running on the CPU"
                    );
                }
            }
        }
        let model = LlamaModel::load_from_file(backend, &path, &params)
            .map_err(|e| Error::llama(format!("loading {}", path.display()), e))?;
        let manifest_path = manifest.dir.join(crate::manifest::MANIFEST_FILE);

        let trained = model.n_ctx_train();
        let context_length = manifest.context_length.unwrap_or(trained);
        if context_length == 0 || context_length > trained {
            return Err(Error::manifest(
                &manifest_path,
                format!(
                    "context_length {context_length} must be from 1 to the {trained} tokens the \
                     model was trained on"
                ),
            ));
        }
        let template = match manifest.chat_template.as_deref() {
            None | Some(TEMPLATE_FROM_METADATA) => {
                model.chat_template(None).map_err(|e| Error::Unsupported {
                    id: manifest.id.clone(),
                    reason: format!(
                        "the GGUF file has no usable chat template ({e}); name one in the \
                         manifest's chat_template (e.g. \"chatml\")"
                    ),
                })?
            }
            // A template name llama.cpp knows ("chatml", "llama3", ...) or a template.
            Some(other) => LlamaChatTemplate::new(other)
                .map_err(|e| Error::manifest(&manifest_path, format!("chat_template: {e}")))?,
        };
        // Bad defaults fail at load time, not on every request.
        Sampling::from_params(
            &serde_json::Map::new(),
            &manifest.defaults,
            "",
            context_length,
        )
        .map_err(|e| Error::manifest(&manifest_path, format!("defaults: {e}")))?;
        Ok(Self {
            id: manifest.id.clone(),
            model,
            template,
            context_length,
            threads: i32::try_from(threads).unwrap_or(i32::MAX),
            defaults: manifest.defaults.clone(),
            runs: Mutex::new(None),
            gate: Mutex::new(()),
        })
    }

    /// The context window, in tokens: the prompt and `max_tokens` together must fit.
    pub(crate) fn context_length(&self) -> u32 {
        self.context_length
    }

    /// The conversation rendered by the chat template and tokenized, with its
    /// sampling settings; every check that needs no model run happens here.
    fn prepare(
        &self,
        request: &InferenceRequest,
    ) -> Result<(Vec<llama_cpp_2::token::LlamaToken>, Sampling)> {
        // A conversation too long for the ledger's prompt comes as the task's input blob
        // (the same JSON, or plain text); the prompt then only labels the task.
        let source = crate::params::text_input(request, "a language model")?;
        let messages = chat::conversation(source)?;
        let sampling =
            Sampling::from_params(&request.params, &self.defaults, source, self.context_length)?;
        let messages = messages
            .into_iter()
            .map(|m| {
                LlamaChatMessage::new(m.role, m.content)
                    .map_err(|e| Error::InvalidInput(format!("a message cannot be used: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let text = self
            .model
            .apply_chat_template(&self.template, &messages, true)
            .map_err(|e| Error::llama("applying the chat template", e))?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        let (prompt, max, window) = (
            tokens.len(),
            sampling.max_tokens as usize,
            self.context_length as usize,
        );
        if prompt >= window {
            return Err(Error::InvalidInput(format!(
                "the conversation is {prompt} tokens, longer than the context window of \
                 {window} tokens: shorten it"
            )));
        }
        if prompt + max > window {
            return Err(Error::InvalidInput(format!(
                "the conversation is {prompt} tokens and params.max_tokens is {max}: together \
                 they must fit the context window of {window} tokens; lower max_tokens to at \
                 most {} or shorten the conversation",
                window - prompt
            )));
        }
        Ok((tokens, sampling))
    }

    /// [`GgufModel::generate`] on this model's own long-lived thread, the chunks passed
    /// back to `sink` on the caller's. ggml's CPU backend runs each decode on an OpenMP
    /// team that belongs to the calling thread, and idle teams spin for a while: runs
    /// made from whichever pool thread was free (as an async node makes them) left
    /// teams spinning beside the live one and cost two thirds of the decode speed on
    /// two cores. One thread per model keeps one team.
    pub(crate) fn generate_on_own_thread(
        self: &std::sync::Arc<Self>,
        request: &InferenceRequest,
        sink: &mut dyn FnMut(StreamChunk) -> bool,
    ) -> Result<InferenceOutput> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (model, request) = (self.clone(), request.clone());
        let job: Job = Box::new(move || {
            let chunks = tx.clone();
            let out = model.generate(&request, &mut |c| chunks.send(Ran::Chunk(c)).is_ok());
            let _ = tx.send(Ran::Done(out));
        });
        self.runner()?
            .send(job)
            .map_err(|_| Error::llama("running the model", "its thread has stopped"))?;
        for ran in rx {
            match ran {
                // Dropping the receiver cancels the run at its next chunk.
                Ran::Chunk(c) => {
                    if !sink(c) {
                        return Err(Error::Cancelled);
                    }
                }
                Ran::Done(out) => return out,
            }
        }
        Err(Error::llama(
            "running the model",
            "its thread stopped mid-run",
        ))
    }

    fn runner(&self) -> Result<std::sync::mpsc::Sender<Job>> {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = runs.as_ref() {
            return Ok(tx.clone());
        }
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("llm-{}", self.id))
            .spawn(move || {
                for job in rx {
                    // A run that panics ends only itself (its caller sees the thread
                    // stop mid-run); the thread goes on with the next.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| Error::llama("starting the model's thread", e))?;
        *runs = Some(tx.clone());
        Ok(tx)
    }

    /// Checks a request without running the model: the errors a client can know before
    /// paying.
    pub(crate) fn check(&self, request: &InferenceRequest) -> Result<()> {
        self.prepare(request).map(drop)
    }

    /// Generates the answer, handing each chunk to `sink` as it is made; `sink` returns
    /// false when nobody is listening any more, which cancels the run. The output is the
    /// [`GenerationFold`] of the very chunks `sink` saw.
    pub(crate) fn generate(
        &self,
        request: &InferenceRequest,
        sink: &mut dyn FnMut(StreamChunk) -> bool,
    ) -> Result<InferenceOutput> {
        let (prompt, sampling) = self.prepare(request)?;
        let _turn = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let started = Instant::now();
        let backend = backend()?;
        let needed =
            (prompt.len() as u32 + sampling.max_tokens).div_ceil(CONTEXT_STEP) * CONTEXT_STEP;
        let n_ctx = needed.min(self.context_length).max(1);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(BATCH as u32)
            .with_n_ubatch(BATCH as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self
            .model
            .new_context(backend, params)
            .map_err(|e| Error::llama("creating a context", e))?;

        let ready = Instant::now();
        let decode_err = |e| Error::llama("decoding", e);
        let mut batch = LlamaBatch::new(BATCH, 1);
        let last = prompt.len() - 1;
        for (c, chunk) in prompt.chunks(BATCH).enumerate() {
            batch.clear();
            for (i, &token) in chunk.iter().enumerate() {
                let pos = c * BATCH + i;
                batch
                    .add(token, pos as i32, &[0], pos == last)
                    .map_err(|e| Error::llama("filling a batch", e))?;
            }
            ctx.decode(&mut batch).map_err(decode_err)?;
        }
        let prefilled = Instant::now();

        let mut sampler = self.sampler(&sampling);
        let vocab = self.model.vocab();
        let mut fold = GenerationFold::new();
        let mut emit = |chunk: StreamChunk| -> Result<()> {
            fold.push(&chunk)
                .map_err(|e| Error::Output(e.to_string()))?;
            if sink(chunk) {
                Ok(())
            } else {
                Err(Error::Cancelled)
            }
        };
        let mut text = TextStream::new(sampling.stop.clone());
        // What is delivered, to be counted by the tokenizer at the end.
        let mut delivered = String::new();
        let mut completion = 0u32;
        let mut logits_at = batch.n_tokens() - 1;
        let mut pos = prompt.len() as i32;
        let mut piece = Vec::new();
        let finish_reason = loop {
            let token = sampler.sample(&ctx, logits_at);
            if vocab.is_eog(token) {
                break FinishReason::Stop;
            }
            completion += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let released = text.push(&piece);
            if !released.is_empty() {
                delivered.push_str(&released);
                emit(StreamChunk::Text { text: released })?;
            }
            if text.stopped() {
                break FinishReason::Stop;
            }
            if completion == sampling.max_tokens {
                break FinishReason::Length;
            }
            batch.clear();
            batch
                .add(token, pos, &[0], true)
                .map_err(|e| Error::llama("filling a batch", e))?;
            pos += 1;
            logits_at = 0;
            ctx.decode(&mut batch).map_err(decode_err)?;
        };
        let rest = text.finish();
        if !rest.is_empty() {
            delivered.push_str(&rest);
            emit(StreamChunk::Text { text: rest })?;
        }
        // The count paid for is the delivered text's under the model's tokenizer, which
        // anyone holding the GGUF can recount (`count_tokens`); it differs from the
        // tokens sampled only where a stop string cut the text or the sampler chose a
        // non-canonical split. Capped at max_tokens, as the ledger caps it.
        let usage = Usage {
            prompt_tokens: prompt.len() as u64,
            completion_tokens: count_text(&self.model, &delivered)
                .min(u64::from(sampling.max_tokens)),
        };
        tracing::debug!(model = %self.id, sampled = completion, counted = usage.completion_tokens, "generated");
        emit(StreamChunk::Done {
            finish_reason,
            usage,
        })?;
        let generation = fold.finish().map_err(|e| Error::Output(e.to_string()))?;
        let done = Instant::now();
        Ok(InferenceOutput {
            bytes: generation.to_bytes(),
            mime: flownet_core::Generation::MIME.into(),
            metadata: json!({
                "seed": sampling.seed,
                "finish_reason": finish_reason.as_str(),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "threads": self.threads,
                "context_ms": (ready - started).as_secs_f64() * 1e3,
                "prefill_ms": (prefilled - ready).as_secs_f64() * 1e3,
                "decode_ms": (done - prefilled).as_secs_f64() * 1e3,
            }),
        })
    }

    /// llama.cpp's sampler chain in its usual order: penalties, then top-k, top-p and
    /// temperature, then a seeded draw (or the most likely token at temperature 0).
    fn sampler(&self, s: &Sampling) -> LlamaSampler {
        let mut chain = vec![LlamaSampler::penalties(
            self.model.n_vocab(),
            PENALTY_WINDOW,
            s.repeat_penalty,
            s.frequency_penalty,
            s.presence_penalty,
        )];
        if s.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            if s.top_k > 0 {
                chain.push(LlamaSampler::top_k(s.top_k));
            }
            if s.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(s.top_p, 1));
            }
            chain.push(LlamaSampler::temp(s.temperature));
            chain.push(LlamaSampler::dist(s.seed32()));
        }
        LlamaSampler::chain_simple(chain)
    }
}
