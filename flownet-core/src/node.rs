//! The node runtime's logic: find tasks addressed to this node, claim them, run the
//! model, store the output by content address and fulfil. The frontends only supply
//! the loop and the timer around [`NodeWorker::tick`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{
    Amount, BlobStore, Digest32, Engine, Error, Generation, InferenceRequest, InputFetcher, Ledger,
    ModelInfo, OutputRef, Result, Task, TaskId, TaskQuery, TaskStatus, TaskStreams, Timestamp,
    Wallet, rules::MAX_INPUT_BYTES,
};

/// The wait in seconds after the `n`-th failed fulfilment of a task: 2ⁿ, capped.
pub fn fulfil_backoff_s(n: u32) -> u64 {
    1u64.checked_shl(n)
        .unwrap_or(u64::MAX)
        .min(MAX_FULFIL_BACKOFF_S)
}

/// How often a failed inference is retried before the node leaves the task to expire.
pub const MAX_ATTEMPTS: u32 = 3;

/// How often a fulfilment that failed for a reason that may pass (the network, the
/// chain, a sequence number taken by another process) is tried before the node leaves
/// the task to expire. A rule's rejection is never retried: it cannot change.
pub const MAX_FULFIL_TRIES: u32 = 5;

/// The wait after the n-th failed fulfilment is 2ⁿ seconds of ledger time, at most this.
pub const MAX_FULFIL_BACKOFF_S: u64 = 60;

/// What the node did, for logs and progress displays.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    Claimed {
        task: TaskId,
        model: String,
    },
    Resumed {
        task: TaskId,
        model: String,
    },
    Running {
        task: TaskId,
        model: String,
    },
    Delivered {
        task: TaskId,
        sha256: Digest32,
        size: u64,
        inference_ms: u64,
        paid: Amount,
    },
    Failed {
        task: TaskId,
        error: String,
        will_retry: bool,
    },
    Skipped {
        task: TaskId,
        reason: String,
    },
    /// The node declined the task (it cannot run it); the requester was refunded.
    Declined {
        task: TaskId,
        reason: String,
    },
}

/// One node's worker. Calls to [`tick`](Self::tick) must not overlap.
pub struct NodeWorker<L: ?Sized, E: ?Sized, B: ?Sized> {
    wallet: Arc<Wallet<L>>,
    engine: Arc<E>,
    blobs: Arc<B>,
    endpoint: String,
    models: HashMap<String, ModelInfo>,
    /// Fetches task inputs this node's blob store lacks; without one such tasks fail.
    fetcher: Option<Arc<dyn InputFetcher>>,
    /// Where streamed answers are published as they are made.
    streams: Option<Arc<dyn TaskStreams>>,
    attempts: Mutex<HashMap<TaskId, u32>>,
    /// Failed fulfilments per task: how many, and the ledger time before which the
    /// next one is not tried.
    fulfil_failures: Mutex<HashMap<TaskId, (u32, Timestamp)>>,
    /// Every task of this node with an id up to here is settled, or can no longer
    /// be served by this worker (past its deadline, a model it does not run, out of
    /// attempts): each tick asks only for the tasks after it, so a node's work per
    /// tick does not grow with its history. Beside it, the largest task id any tick
    /// has read.
    floor: Mutex<(TaskId, TaskId)>,
}

impl<L: ?Sized, E: ?Sized, B: ?Sized> std::fmt::Debug for NodeWorker<L, E, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeWorker")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl<L: Ledger + ?Sized, E: Engine + ?Sized, B: BlobStore + ?Sized> NodeWorker<L, E, B> {
    /// A worker serving every model of `engine`, publishing outputs under `endpoint`.
    pub fn new(
        wallet: Arc<Wallet<L>>,
        engine: Arc<E>,
        blobs: Arc<B>,
        endpoint: impl Into<String>,
    ) -> Self {
        let models = engine
            .models()
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect();
        Self {
            wallet,
            engine,
            blobs,
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            models,
            fetcher: None,
            streams: None,
            attempts: Mutex::default(),
            fulfil_failures: Mutex::default(),
            floor: Mutex::new((0, 0)),
        }
    }

    /// Fetches task inputs through `fetcher` when this node's blob store lacks them.
    pub fn with_fetcher(mut self, fetcher: Arc<dyn InputFetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// Publishes the chunks of every streamed answer (text generation) to `streams`
    /// while the model runs.
    pub fn with_streams(mut self, streams: Arc<dyn TaskStreams>) -> Self {
        self.streams = Some(streams);
        self
    }

    pub fn wallet(&self) -> &Arc<Wallet<L>> {
        &self.wallet
    }

    /// One pass: first the tasks this node claimed and has not delivered (a restart
    /// resumes them), then the open ones. Returns how many tasks it delivered.
    pub async fn tick(&self, on_event: &(dyn Fn(&NodeEvent) + Send + Sync)) -> Result<usize> {
        let me = self.wallet.address();
        let ledger = self.wallet.ledger();
        let mut delivered = 0;
        let floor = self.floor();
        // The time the floor is judged at: read before the tasks, so a deadline
        // counts as passed only if it had passed before they were read.
        let then = ledger.info().await?.now;
        let claimed = ledger
            .tasks(TaskQuery {
                node: Some(me),
                status: Some(TaskStatus::Claimed),
                after: Some(floor),
                ..TaskQuery::default()
            })
            .await?;
        let mut live: Option<TaskId> = None;
        let mut seen = self.floor.lock().unwrap_or_else(|e| e.into_inner()).1;
        for task in &claimed {
            seen = seen.max(task.id);
            if then <= task.fulfil_deadline.unwrap_or(0) && self.attempts_left(task.id) > 0 {
                live = Some(live.map_or(task.id, |l| l.min(task.id)));
            }
        }
        for task in claimed {
            let now = ledger.info().await?.now;
            if now > task.fulfil_deadline.unwrap_or(0) || self.attempts_left(task.id) == 0 {
                continue;
            }
            if self.backing_off(task.id, now) {
                continue;
            }
            on_event(&NodeEvent::Resumed {
                task: task.id,
                model: task.model_id.clone(),
            });
            delivered += usize::from(self.process(&task, on_event).await?);
        }
        let open = ledger
            .tasks(TaskQuery {
                node: Some(me),
                status: Some(TaskStatus::Open),
                after: Some(floor),
                ..TaskQuery::default()
            })
            .await?;
        for task in &open {
            seen = seen.max(task.id);
            if then <= task.claim_deadline && self.can_serve(task).is_ok() {
                live = Some(live.map_or(task.id, |l| l.min(task.id)));
            }
        }
        // Below the first task still to act on, or past everything seen when none
        // is (tasks are numbered in order, so none older can appear later).
        self.raise_floor(live.map_or(seen, |id| id - 1), seen);
        for task in open {
            if ledger.info().await?.now > task.claim_deadline {
                continue;
            }
            // A task this node cannot run (a model it does not serve, or weights it
            // no longer runs) is declined at once: the requester gets the escrow
            // back now rather than at the deadline.
            if let Err(reason) = self.can_serve(&task) {
                self.decline(&task, &reason, on_event).await?;
                continue;
            }
            match self.wallet.claim(task.id).await {
                Ok(_) => on_event(&NodeEvent::Claimed {
                    task: task.id,
                    model: task.model_id.clone(),
                }),
                // Lost a race with a cancel or the deadline: nothing to do.
                Err(e) if e.is_rejection() => {
                    on_event(&NodeEvent::Skipped {
                        task: task.id,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            }
            delivered += usize::from(self.process(&task, on_event).await?);
        }
        Ok(delivered)
    }

    /// The id up to which this worker has nothing left to do; see the field.
    pub fn floor(&self) -> TaskId {
        self.floor.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    fn raise_floor(&self, to: TaskId, seen: TaskId) {
        let mut f = self.floor.lock().unwrap_or_else(|e| e.into_inner());
        f.0 = f.0.max(to);
        f.1 = f.1.max(seen);
    }

    /// How many times the model has failed on `task` in this process.
    fn attempts_used(&self, task: TaskId) -> u32 {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&task)
            .copied()
            .unwrap_or(0)
    }

    fn attempts_left(&self, task: TaskId) -> u32 {
        MAX_ATTEMPTS.saturating_sub(self.attempts_used(task))
    }

    fn can_serve(&self, task: &Task) -> std::result::Result<(), String> {
        let Some(model) = self.models.get(&task.model_id) else {
            return Err(format!("this node does not run model {}", task.model_id));
        };
        if model.weights_sha256 != task.weights_sha256 {
            return Err(format!(
                "task {} was paid for weights {} but this node runs {}",
                task.id, task.weights_sha256, model.weights_sha256
            ));
        }
        Ok(())
    }

    /// Runs and delivers one claimed task. Returns whether it was delivered; inference
    /// failures are reported and retried on later ticks, never propagated.
    async fn process(
        &self,
        task: &Task,
        on_event: &(dyn Fn(&NodeEvent) + Send + Sync),
    ) -> Result<bool> {
        if let Err(reason) = self.can_serve(task) {
            self.decline(task, &reason, on_event).await?;
            return Ok(false);
        }
        let attempts = self.attempts_used(task.id);
        if attempts >= MAX_ATTEMPTS {
            return Ok(false);
        }
        let (output, inference_ms) = match self.blobs.delivery(task.id)? {
            Some(output) => (output, 0),
            None => {
                on_event(&NodeEvent::Running {
                    task: task.id,
                    model: task.model_id.clone(),
                });
                let started = std::time::Instant::now();
                match self.run_model(task).await {
                    Ok(output) => (output, started.elapsed().as_millis() as u64),
                    Err(e) => {
                        // Bad input fails the same way every time: decline at once.
                        // Anything else may pass; after the last try, decline too.
                        let n = if matches!(e, Error::InvalidInput(_)) {
                            MAX_ATTEMPTS
                        } else {
                            attempts + 1
                        };
                        self.attempts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(task.id, n);
                        let will_retry = n < MAX_ATTEMPTS;
                        on_event(&NodeEvent::Failed {
                            task: task.id,
                            error: e.to_string(),
                            will_retry,
                        });
                        if !will_retry {
                            self.decline(task, &e.to_string(), on_event).await?;
                        }
                        return Ok(false);
                    }
                }
            }
        };
        let units = match self.units_of(task, &output) {
            Ok(units) => units,
            Err(e) => {
                self.give_up(task.id);
                on_event(&NodeEvent::Failed {
                    task: task.id,
                    error: e.to_string(),
                    will_retry: false,
                });
                self.decline(task, &e.to_string(), on_event).await?;
                return Ok(false);
            }
        };
        match self
            .wallet
            .fulfil_units(task.id, output.clone(), units)
            .await
        {
            Ok(receipt) => {
                self.attempts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&task.id);
                self.fulfil_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&task.id);
                on_event(&NodeEvent::Delivered {
                    task: task.id,
                    sha256: output.sha256,
                    size: output.size,
                    inference_ms,
                    paid: receipt.outcome.credited.unwrap_or_default(),
                });
                Ok(true)
            }
            // A rule's rejection (the deadline passed, the task is no longer
            // claimed, the chain refused the transaction) cannot change: give up.
            Err(e) if e.is_rejection() && !matches!(e, Error::BadSequence { .. }) => {
                self.give_up(task.id);
                on_event(&NodeEvent::Failed {
                    task: task.id,
                    error: e.to_string(),
                    will_retry: false,
                });
                Ok(false)
            }
            // Anything else may pass: try again later, backing off, a few times.
            // The error stays with this task, so the tick goes on with the others.
            Err(e) => {
                let now = self
                    .wallet
                    .ledger()
                    .info()
                    .await
                    .map(|i| i.now)
                    .unwrap_or(0);
                let will_retry = self.note_fulfil_failure(task.id, now);
                if !will_retry {
                    self.give_up(task.id);
                }
                on_event(&NodeEvent::Failed {
                    task: task.id,
                    error: e.to_string(),
                    will_retry,
                });
                Ok(false)
            }
        }
    }

    /// Whether `task`'s last fulfilment failed so recently that the next try waits.
    fn backing_off(&self, task: TaskId, now: Timestamp) -> bool {
        self.fulfil_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&task)
            .is_some_and(|(_, not_before)| now < *not_before)
    }

    /// Records a failed fulfilment of `task` at ledger time `now` and returns whether
    /// it will be tried again.
    fn note_fulfil_failure(&self, task: TaskId, now: Timestamp) -> bool {
        let mut failures = self
            .fulfil_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(task).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = now.saturating_add(fulfil_backoff_s(entry.0));
        entry.0 < MAX_FULFIL_TRIES
    }

    /// Declines `task` with `reason` (the requester is refunded at once) and gives it
    /// up. A rejection (the task was cancelled, or its deadline passed, in the
    /// meantime) is reported and the tick goes on; only other errors propagate.
    async fn decline(
        &self,
        task: &Task,
        reason: &str,
        on_event: &(dyn Fn(&NodeEvent) + Send + Sync),
    ) -> Result<()> {
        self.give_up(task.id);
        match self.wallet.decline(task.id, reason).await {
            Ok(_) => {
                on_event(&NodeEvent::Declined {
                    task: task.id,
                    reason: crate::rules::decline_reason(reason),
                });
                Ok(())
            }
            Err(e) if e.is_rejection() => {
                on_event(&NodeEvent::Skipped {
                    task: task.id,
                    reason: format!("could not decline: {e}"),
                });
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// This worker will not act on `task` again (in this process).
    fn give_up(&self, task: TaskId) {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task, MAX_ATTEMPTS);
    }

    /// The units a metered task's output holds (the tokens a language model generated,
    /// or an embedding model read; at most the task's `max_units`); `None` for a task
    /// priced per task.
    fn units_of(&self, task: &Task, output: &OutputRef) -> Result<Option<u64>> {
        if task.unit_price.is_none() {
            return Ok(None);
        }
        let bytes = self.blobs.get(&output.sha256)?.ok_or_else(|| {
            Error::NotFound(format!(
                "output sha256:{} left the blob store",
                output.sha256
            ))
        })?;
        let used = match self.models.get(&task.model_id).map(|m| m.kind) {
            // An embedding model is paid for the tokens it read.
            Some(crate::TaskKind::Embedding) => {
                crate::embedding::Embeddings::from_bytes(&bytes)?
                    .usage
                    .prompt_tokens
            }
            _ => Generation::from_bytes(&bytes)?.usage.completion_tokens,
        };
        Ok(Some(used.min(task.max_units)))
    }

    async fn run_model(&self, task: &Task) -> Result<OutputRef> {
        let mut params = match serde_json::from_str(&task.params) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(Error::InvalidInput("params must be a JSON object".into())),
        };
        // A metered task pays for at most `max_units` tokens: the model writes no more.
        if task.unit_price.is_some() {
            let asked = params.get("max_tokens").and_then(serde_json::Value::as_u64);
            let max = asked.map_or(task.max_units, |a| a.min(task.max_units));
            params.insert("max_tokens".into(), max.into());
        }
        let kind = self.models.get(&task.model_id).map(|m| m.kind);
        let input = match (&task.input, kind) {
            (Some(_), _) => Some(self.fetch_input(task).await?),
            (None, Some(k)) if k.takes_image() => Some(self.resolve_input(&task.prompt)?),
            _ => None,
        };
        let request = InferenceRequest {
            model_id: task.model_id.clone(),
            prompt: task.prompt.clone(),
            params,
            input,
        };
        let out = match &self.streams {
            Some(streams) => {
                let (id, streams) = (task.id, streams.clone());
                streams.start(id);
                let sink = move |chunk| streams.chunk(id, chunk);
                self.engine.infer_stream(request, &sink).await?
            }
            None => self.engine.infer(request).await?,
        };
        let sha256 = self.blobs.put(&out.bytes)?;
        let output = OutputRef {
            sha256,
            uri: crate::Endpoint::parse(&self.endpoint)
                .map(|e| e.blob_url(&sha256))
                .unwrap_or_else(|_| format!("{}/blobs/{sha256}", self.endpoint)),
            mime: out.mime,
            size: out.bytes.len() as u64,
        };
        self.blobs.record_delivery(task.id, &output)?;
        Ok(output)
    }

    /// A task's input blob: from this node's blob store when it holds the bytes, else
    /// fetched from the task's `uri`; either way checked against the ledger's hash and
    /// size before the model sees it, and kept for a retry.
    async fn fetch_input(&self, task: &Task) -> Result<Vec<u8>> {
        let Some(input) = &task.input else {
            return Err(Error::InvalidInput(format!(
                "task {} has no input",
                task.id
            )));
        };
        if let Some(bytes) = self.blobs.get(&input.sha256)? {
            input.check(&bytes)?;
            return Ok(bytes);
        }
        let fetcher = self.fetcher.as_ref().ok_or_else(|| {
            Error::NotFound(format!(
                "input sha256:{} is not in this node's blob store and the node fetches no inputs",
                input.sha256
            ))
        })?;
        let bytes = fetcher
            .fetch(input, input.size.min(MAX_INPUT_BYTES))
            .await?;
        input.check(&bytes)?;
        self.blobs.put(&bytes)?;
        Ok(bytes)
    }

    /// An input image is named by its content address, `sha256:<hex>`, and must be in
    /// this node's blob store (on the embedded ledger the user's CLI puts it there).
    fn resolve_input(&self, prompt: &str) -> Result<Vec<u8>> {
        let hex = prompt.trim().strip_prefix("sha256:").ok_or_else(|| {
            Error::InvalidInput(
                "this model takes an image: the prompt must be sha256:<hex of the image>".into(),
            )
        })?;
        let sha = Digest32::from_hex(hex)?;
        self.blobs.get(&sha)?.ok_or_else(|| {
            Error::NotFound(format!(
                "input image sha256:{sha} is not in this node's blob store"
            ))
        })
    }
}
