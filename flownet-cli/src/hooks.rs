//! Extension points for frontends that embed the command. The Python package's
//! `flownet` console script calls [`crate::run`] like the binary does; before that it
//! registers what only it can do here, so both programs share one argument parser:
//! a loader for `node serve --handler MODULE:OBJECT` and the text `--version` adds.

use std::{path::PathBuf, sync::Arc, sync::OnceLock};

use flownet_core::{Engine, OfferedModel};

/// What `node serve --handler` serves: an engine, the offers to publish for it, and
/// optionally the node's name and endpoint (else the registered ones are kept).
pub struct Handler {
    pub engine: Arc<dyn Engine>,
    pub offers: Vec<OfferedModel>,
    pub name: Option<String>,
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("offers", &self.offers)
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The global options a handler loader may need (handlers can mix in ONNX models).
#[derive(Debug, Clone)]
pub struct HandlerContext {
    pub models_dir: PathBuf,
    pub threads: Option<usize>,
    pub cuda: bool,
}

/// Turns a `--handler` spec into a [`Handler`]. It runs on a blocking thread.
pub type HandlerLoader =
    Box<dyn Fn(&str, &HandlerContext) -> anyhow::Result<Handler> + Send + Sync>;

static HANDLER_LOADER: OnceLock<HandlerLoader> = OnceLock::new();
static VERSION: OnceLock<String> = OnceLock::new();

/// Registers the loader for `node serve --handler`. Returns false (and keeps the first)
/// when one is already registered.
pub fn set_handler_loader(loader: HandlerLoader) -> bool {
    HANDLER_LOADER.set(loader).is_ok()
}

pub(crate) fn handler_loader() -> Option<&'static HandlerLoader> {
    HANDLER_LOADER.get()
}

/// Says which program `--version` reports, e.g. `Python package, CPython 3.11`.
/// Returns false when a description is already set.
pub fn set_frontend(description: &str) -> bool {
    VERSION
        .set(format!("{} ({description})", env!("CARGO_PKG_VERSION")))
        .is_ok()
}

/// The version text: the crate version and which program runs it.
pub(crate) fn version() -> &'static str {
    VERSION
        .get_or_init(|| format!("{} (Rust binary)", env!("CARGO_PKG_VERSION")))
        .as_str()
}
