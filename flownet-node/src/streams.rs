//! The answers a node is streaming, kept for followers: the chunks of each task's
//! current run, replayed to anyone who connects to `GET /tasks/{id}/stream` and then
//! sent as they come. Bounded: at most [`MAX_STREAMS`] tasks are kept, the oldest
//! forgotten first.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use flownet_core::{StreamChunk, TaskId, TaskStreams};
use tokio::sync::watch;

/// Most task streams kept at once.
pub const MAX_STREAMS: usize = 256;

struct Entry {
    /// Which run of the task these chunks are of (a retry starts a new one).
    run: u64,
    chunks: Vec<StreamChunk>,
    /// The number of chunks so far, for followers waiting on the next.
    sent: watch::Sender<usize>,
}

/// The node's task streams.
#[derive(Default)]
pub struct StreamHub {
    inner: Mutex<(HashMap<TaskId, Entry>, VecDeque<TaskId>)>,
}

impl std::fmt::Debug for StreamHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHub").finish_non_exhaustive()
    }
}

/// What a follower reads next: chunks from index `from` of run `run`.
#[derive(Debug)]
pub enum Next {
    /// Chunks, with the run they belong to.
    Chunks { run: u64, chunks: Vec<StreamChunk> },
    /// Nothing new yet: wait on the receiver.
    Wait(watch::Receiver<usize>),
    /// The task is not streamed here (not running, forgotten, or not a stream).
    Unknown,
}

impl StreamHub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The chunks of `task` after the first `from` of run `run` (any run when `None`);
    /// a follower of a run that was replaced starts the new run over.
    pub fn next(&self, task: TaskId, run: Option<u64>, from: usize) -> Next {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = inner.0.get(&task) else {
            return Next::Unknown;
        };
        let from = if run.is_some_and(|r| r != entry.run) {
            0
        } else {
            from
        };
        if from < entry.chunks.len() {
            Next::Chunks {
                run: entry.run,
                chunks: entry.chunks[from..].to_vec(),
            }
        } else {
            Next::Wait(entry.sent.subscribe())
        }
    }
}

impl TaskStreams for StreamHub {
    fn start(&self, task: TaskId) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *inner;
        if let Some(entry) = map.get_mut(&task) {
            entry.run += 1;
            entry.chunks.clear();
            entry.sent.send_replace(0);
            return;
        }
        while map.len() >= MAX_STREAMS {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
        map.insert(
            task,
            Entry {
                run: 0,
                chunks: Vec::new(),
                sent: watch::channel(0).0,
            },
        );
        order.push_back(task);
    }

    fn chunk(&self, task: TaskId, chunk: StreamChunk) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = inner.0.get_mut(&task) {
            entry.chunks.push(chunk);
            entry.sent.send_replace(entry.chunks.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> StreamChunk {
        StreamChunk::Text { text: t.into() }
    }

    #[test]
    fn followers_replay_then_follow_and_a_retry_starts_over() {
        let hub = StreamHub::default();
        assert!(matches!(hub.next(1, None, 0), Next::Unknown));
        hub.start(1);
        assert!(matches!(hub.next(1, None, 0), Next::Wait(_)));
        hub.chunk(1, text("a"));
        hub.chunk(1, text("b"));
        match hub.next(1, None, 1) {
            Next::Chunks { run: 0, chunks } => assert_eq!(chunks, vec![text("b")]),
            _ => panic!("expected the second chunk"),
        }
        hub.start(1);
        hub.chunk(1, text("c"));
        match hub.next(1, Some(0), 2) {
            Next::Chunks { run: 1, chunks } => assert_eq!(chunks, vec![text("c")]),
            _ => panic!("a follower of the old run starts the new one over"),
        }
    }

    #[test]
    fn the_hub_is_bounded() {
        let hub = StreamHub::default();
        for t in 0..(MAX_STREAMS as u64 + 10) {
            hub.start(t);
        }
        assert!(matches!(hub.next(0, None, 0), Next::Unknown));
        assert!(matches!(
            hub.next(MAX_STREAMS as u64 + 9, None, 0),
            Next::Wait(_)
        ));
        assert_eq!(hub.inner.lock().unwrap().0.len(), MAX_STREAMS);
    }
}
