//! A task's life as server-sent events: submitted → claimed → running → delivered
//! (or expired, or cancelled).
//!
//! One poller watches the ledger for every open stream: it reads the ledger's height
//! each interval and rereads only the watched tasks when the height moved, so a
//! thousand streams cost one cheap query per interval, not a thousand. "Running" is
//! not a ledger state: the gateway learns it from the node it runs in-process, and a
//! task served by another process goes from claimed straight to delivered.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::response::sse::Event;
use flownet_core::{Ledger, NodeEvent, Task, TaskId, TaskQuery, TaskStatus, Timestamp};
use serde_json::json;
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;

/// What the hub knows of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub task: Task,
    /// The in-process node said it is running the model.
    pub running: bool,
    /// The ledger's clock when the task was last read.
    pub now: Timestamp,
}

/// One step of a task's life, as an event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Submitted,
    Claimed,
    Running,
    /// A deadline passed and nobody expired the task yet: the requester may.
    Overdue,
    Delivered,
    Expired,
    Cancelled,
    /// The node declined the task (it cannot run it); the escrow came back at once.
    Declined,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Claimed => "claimed",
            Self::Running => "running",
            Self::Overdue => "overdue",
            Self::Delivered => "delivered",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
            Self::Declined => "declined",
        }
    }

    fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Expired | Self::Cancelled | Self::Declined
        )
    }
}

/// The steps a task has been through, in order.
pub fn steps(state: &TaskState) -> Vec<Step> {
    let t = &state.task;
    let mut s = vec![Step::Submitted];
    // The node runs a task only after its claim is on the ledger, but its "running"
    // may arrive before the hub rereads the claim: both steps wait for the claim, so
    // each event carries the task as it is after it (claimed, with claimed_at).
    if t.claimed_at.is_some() {
        s.push(Step::Claimed);
        if state.running {
            s.push(Step::Running);
        }
    }
    let overdue = match t.status {
        TaskStatus::Open => state.now > t.claim_deadline,
        TaskStatus::Claimed => state.now > t.fulfil_deadline.unwrap_or(u64::MAX),
        _ => false,
    };
    if overdue {
        s.push(Step::Overdue);
    }
    match t.status {
        TaskStatus::Fulfilled => s.push(Step::Delivered),
        TaskStatus::Expired => s.push(Step::Expired),
        TaskStatus::Cancelled => s.push(Step::Cancelled),
        TaskStatus::Declined => s.push(Step::Declined),
        TaskStatus::Open | TaskStatus::Claimed => {}
    }
    s
}

#[derive(Debug)]
struct Watched {
    tx: watch::Sender<TaskState>,
    /// When this gateway relayed the task's submit, for the latency histogram.
    submitted: Option<Instant>,
    since: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    watched: HashMap<TaskId, Watched>,
    /// Tasks the in-process node started, with the model and when; bounded.
    running: HashMap<TaskId, (String, Instant)>,
}

/// Most running-task records kept for late subscribers.
const MAX_RUNNING_RECORDS: usize = 4096;
/// A submit tracked for the latency histogram is dropped after this long.
const MAX_TRACKING: Duration = Duration::from_secs(3600);

/// Watches tasks on the ledger for the event streams and the latency histogram.
pub struct TaskHub {
    ledger: Arc<dyn Ledger>,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
    wake: Notify,
    /// The ledger's clock at the last poll (0 before the first).
    last_now: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for TaskHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHub").finish_non_exhaustive()
    }
}

impl TaskHub {
    pub fn new(ledger: Arc<dyn Ledger>, metrics: Arc<Metrics>) -> Self {
        Self {
            ledger,
            metrics,
            inner: Mutex::default(),
            wake: Notify::new(),
            last_now: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The ledger's clock as of the last poll, if there was one.
    pub fn last_now(&self) -> Option<Timestamp> {
        match self.last_now.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// A receiver for `task` if the hub already watches it (e.g. its submit was
    /// relayed here), so a new stream needs no ledger read.
    pub fn subscribe_watched(&self, task: TaskId) -> Option<watch::Receiver<TaskState>> {
        self.lock().watched.get(&task).map(|w| w.tx.subscribe())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `task` (as just read from the ledger) and returns its state's receiver.
    pub fn subscribe(&self, task: Task, now: Timestamp) -> watch::Receiver<TaskState> {
        let mut inner = self.lock();
        let running = inner.running.contains_key(&task.id);
        let id = task.id;
        let entry = inner.watched.entry(id).or_insert_with(|| Watched {
            tx: watch::Sender::new(TaskState { task, running, now }),
            submitted: None,
            since: Instant::now(),
        });
        let rx = entry.tx.subscribe();
        drop(inner);
        self.wake.notify_one();
        rx
    }

    /// Records that this gateway relayed the submit of `task` at `at`, so its delivery
    /// is timed.
    pub fn track_submit(&self, task: Task, now: Timestamp, at: Instant) {
        let mut inner = self.lock();
        let id = task.id;
        let entry = inner.watched.entry(id).or_insert_with(|| Watched {
            tx: watch::Sender::new(TaskState {
                task,
                running: false,
                now,
            }),
            submitted: None,
            since: at,
        });
        entry.submitted = Some(at);
        drop(inner);
        self.wake.notify_one();
    }

    /// Feeds an event of the in-process node.
    pub fn node_event(&self, event: &NodeEvent) {
        match event {
            NodeEvent::Running { task, model } => {
                let mut inner = self.lock();
                if inner.running.len() >= MAX_RUNNING_RECORDS {
                    // Forget the oldest half; only late subscribers miss "running".
                    let mut by_age: Vec<_> = inner
                        .running
                        .iter()
                        .map(|(id, (_, at))| (*at, *id))
                        .collect();
                    by_age.sort();
                    for (_, id) in by_age.iter().take(MAX_RUNNING_RECORDS / 2) {
                        inner.running.remove(id);
                    }
                }
                inner.running.insert(*task, (model.clone(), Instant::now()));
                if let Some(w) = inner.watched.get(task) {
                    w.tx.send_if_modified(|s| !std::mem::replace(&mut s.running, true));
                }
                drop(inner);
                // The claim is on the ledger by now: read it without waiting a tick.
                self.wake.notify_one();
            }
            NodeEvent::Delivered {
                task, inference_ms, ..
            } => {
                let model = self.lock().running.get(task).map(|(m, _)| m.clone());
                if let Some(model) = model {
                    self.metrics
                        .inference(&model, Duration::from_millis(*inference_ms));
                }
                // The fulfilment is on the ledger now: look without waiting a tick.
                self.wake.notify_one();
            }
            _ => {}
        }
    }

    /// Polls the ledger every `interval` while anything is watched, until `stop`.
    pub async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut last_height = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let idle = self.lock().watched.is_empty();
            if idle {
                last_height = None;
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            // Subscribed before reading: an envelope applied in this process (a
            // node's claim, a delivery) is seen at once rather than at the next poll.
            let changed = self.ledger.changed();
            if let Err(e) = self.poll(&mut last_height).await {
                tracing::warn!("watching tasks: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = changed => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn poll(&self, last_height: &mut Option<u64>) -> flownet_core::Result<()> {
        let info = self.ledger.info().await?;
        self.last_now
            .store(info.now, std::sync::atomic::Ordering::Relaxed);
        let ids: Vec<TaskId> = {
            let mut inner = self.lock();
            // Drop what nobody needs: no stream listens and no delivery is being timed.
            inner.watched.retain(|_, w| {
                w.tx.receiver_count() > 0
                    || (w.submitted.is_some() && w.since.elapsed() < MAX_TRACKING)
            });
            inner.watched.keys().copied().collect()
        };
        // Without a new envelope nothing changed, but the clock may have made a task
        // overdue, so the clock is still passed on.
        let moved = *last_height != Some(info.height);
        *last_height = Some(info.height);
        let mut fresh = if moved {
            self.read_tasks(&ids).await?
        } else {
            HashMap::new()
        };
        for id in ids {
            let task = fresh.remove(&id);
            let mut inner = self.lock();
            let running = inner.running.contains_key(&id);
            let Some(w) = inner.watched.get_mut(&id) else {
                continue;
            };
            w.tx.send_if_modified(|s| {
                let before = steps(s);
                let changed = task.as_ref().is_some_and(|t| *t != s.task);
                if let Some(t) = &task {
                    s.task = t.clone();
                }
                s.running |= running;
                s.now = info.now;
                changed || steps(s) != before
            });
            let status = w.tx.borrow().task.status;
            if status.is_final() {
                if let Some(at) = w.submitted.take()
                    && status == TaskStatus::Fulfilled
                {
                    self.metrics.delivery(at.elapsed());
                }
                if w.tx.receiver_count() == 0 {
                    inner.watched.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// Reads the watched tasks: the ones watched at once are mostly recent and close
    /// together, so one range query usually fetches them all.
    async fn read_tasks(&self, ids: &[TaskId]) -> flownet_core::Result<HashMap<TaskId, Task>> {
        let (Some(&lo), Some(&hi)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(HashMap::new());
        };
        let span = hi - lo + 1;
        if span <= (ids.len() as u64).saturating_mul(4).max(64) {
            let all = self
                .ledger
                .tasks(TaskQuery {
                    after: Some(lo - 1),
                    limit: Some(span as u32),
                    ..TaskQuery::default()
                })
                .await?;
            let wanted: std::collections::HashSet<TaskId> = ids.iter().copied().collect();
            return Ok(all
                .into_iter()
                .filter(|t| wanted.contains(&t.id))
                .map(|t| (t.id, t))
                .collect());
        }
        let mut out = HashMap::new();
        for &id in ids {
            if let Some(t) = self.ledger.task(id).await? {
                out.insert(id, t);
            }
        }
        Ok(out)
    }

    /// Waits until `task` is final, `timeout` passes or `closing` turns true; returns
    /// the last state seen.
    pub async fn wait_final(
        &self,
        task: Task,
        now: Timestamp,
        timeout: Duration,
        closing: watch::Receiver<bool>,
    ) -> TaskState {
        self.wait_until(task, now, timeout, closing, |t| t.status.is_final())
            .await
    }

    /// Waits until `done` holds for the task, `timeout` passes or `closing` turns true;
    /// returns the last state seen.
    pub async fn wait_until(
        &self,
        task: Task,
        now: Timestamp,
        timeout: Duration,
        mut closing: watch::Receiver<bool>,
        done: impl Fn(&Task) -> bool,
    ) -> TaskState {
        let mut rx = self.subscribe(task, now);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let state = rx.borrow_and_update().clone();
            if done(&state.task) || *closing.borrow() {
                return state;
            }
            tokio::select! {
                r = tokio::time::timeout_at(deadline, rx.changed()) => match r {
                    Ok(Ok(())) => {}
                    _ => return rx.borrow().clone(),
                },
                _ = closing.changed() => {}
            }
        }
    }
}

/// The SSE events of one task's life, ending after its final step, when `closing`
/// turns true, or after `max` (the client may reconnect and get the steps again).
pub fn task_events(
    rx: watch::Receiver<TaskState>,
    guard: impl Send + 'static,
    mut closing: watch::Receiver<bool>,
    max: Duration,
) -> impl futures::Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let end = async move {
        let deadline = tokio::time::sleep(max);
        tokio::pin!(deadline);
        while !*closing.borrow_and_update() {
            tokio::select! {
                _ = &mut deadline => return,
                r = closing.changed() => if r.is_err() { return },
            }
        }
    };
    futures::StreamExt::take_until(steps_stream(rx, guard), Box::pin(end))
}

fn steps_stream(
    rx: watch::Receiver<TaskState>,
    guard: impl Send + 'static,
) -> impl futures::Stream<Item = Result<Event, Infallible>> + Send + 'static {
    struct S<G> {
        rx: watch::Receiver<TaskState>,
        sent: Vec<Step>,
        queue: VecDeque<Event>,
        done: bool,
        _guard: G,
    }
    let state = S {
        rx,
        sent: Vec::new(),
        queue: VecDeque::new(),
        done: false,
        _guard: guard,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(ev) = s.queue.pop_front() {
                return Some((Ok(ev), s));
            }
            if s.done {
                return None;
            }
            let current = s.rx.borrow_and_update().clone();
            for step in steps(&current) {
                if s.sent.contains(&step) {
                    continue;
                }
                s.sent.push(step);
                let mut data =
                    json!({ "step": step.as_str(), "task": current.task, "now": current.now });
                flownet_core::cid::add_cids(&mut data);
                s.queue.push_back(
                    Event::default()
                        .event(step.as_str())
                        .id(format!("{}-{}", current.task.id, s.sent.len()))
                        .data(data.to_string()),
                );
                if step.is_final() {
                    s.done = true;
                    break;
                }
            }
            if !s.queue.is_empty() || s.done {
                continue;
            }
            if s.rx.changed().await.is_err() {
                // The hub let go of the task: send what it last knew, then end.
                s.done = steps(&s.rx.borrow()).iter().all(|st| s.sent.contains(st));
                if s.done {
                    return None;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flownet_core::{Address, Amount, Digest32};

    fn task(status: TaskStatus, claimed: bool) -> Task {
        Task {
            id: 1,
            requester: Address([1; 8]),
            node: Address([2; 8]),
            model_id: "m".into(),
            weights_sha256: Digest32::default(),
            prompt: "p".into(),
            params: "{}".into(),
            price: Amount(1),
            input: None,
            unit_price: None,
            max_units: 0,
            units: None,
            refunded: Amount::ZERO,
            declined_reason: None,
            status,
            submitted_at: 100,
            claim_deadline: 400,
            claimed_at: claimed.then_some(110),
            fulfil_deadline: claimed.then_some(710),
            fulfilled_at: None,
            result: None,
            nft: None,
            bounty_pool: Amount::ZERO,
            bounty_share: Amount::ZERO,
            bounty_paid: 0,
        }
    }

    #[test]
    fn steps_follow_the_task_and_the_clock() {
        let st = |status, claimed, running, now| TaskState {
            task: task(status, claimed),
            running,
            now,
        };
        assert_eq!(
            steps(&st(TaskStatus::Open, false, false, 200)),
            [Step::Submitted]
        );
        assert_eq!(
            steps(&st(TaskStatus::Open, false, false, 401)),
            [Step::Submitted, Step::Overdue]
        );
        assert_eq!(
            steps(&st(TaskStatus::Claimed, true, true, 200)),
            [Step::Submitted, Step::Claimed, Step::Running]
        );
        assert_eq!(
            steps(&st(TaskStatus::Fulfilled, true, true, 200)),
            [
                Step::Submitted,
                Step::Claimed,
                Step::Running,
                Step::Delivered
            ]
        );
        assert_eq!(
            steps(&st(TaskStatus::Open, false, true, 200)),
            [Step::Submitted],
            "a running heard before the claim waits for the claim: events carry the task after them"
        );
        assert_eq!(
            steps(&st(TaskStatus::Claimed, true, false, 200)),
            [Step::Submitted, Step::Claimed]
        );
        assert_eq!(
            steps(&st(TaskStatus::Expired, false, false, 900)),
            [Step::Submitted, Step::Expired]
        );
    }
}
