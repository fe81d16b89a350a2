//! The native module of the `flownet` Python package, `flownet._flownet`: PyO3 glue over
//! the same Rust crates as the `flownet` command. It converts values, maps errors to
//! the exception classes of `flownet.exceptions` (one function, [`errors::to_py_err`]),
//! runs every blocking call on one shared tokio runtime with the GIL released (on Flow,
//! while a transaction is sent and sealed), and
//! implements the core's `Engine` port for Python model functions, taking the GIL only
//! to call them.
//!
//! ## Feature Flags
//! - `cuda`: lets a node's ONNX models run on ONNX Runtime's CUDA execution provider.
//!
//! ## Example
//! Python, after `pip install ./flownet-py`:
//! ```text
//! import flownet
//! ledger = flownet.Ledger.open("/tmp/demo/ledger.db", create=True)
//! alice = flownet.Account.create(ledger, "alice")
//! print(alice.address, alice.balance())
//! # the same on FlowNet's Flow contracts, configured from FLOWNET_FLOW_* as the command is
//! on_flow = flownet.Ledger.open("emulator")
//! ```

mod cli;
mod client;
mod convert;
mod engine;
mod errors;
mod ledger;
mod node;

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::OnceLock,
};

use pyo3::prelude::*;

use crate::errors::{FlowResult, panic_to_py_err, to_py_err};

/// The one tokio runtime every call from Python runs on.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("flownet")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| to_py_err(None, format!("cannot start the async runtime: {e}")))
}

/// Runs `fut` to completion on the shared runtime with the GIL released; its error
/// becomes the matching exception and a panic becomes `FlowNetError`.
pub(crate) fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = FlowResult<T>> + Send,
    T: Send,
{
    let rt = runtime()?;
    py.detach(|| catch_unwind(AssertUnwindSafe(|| rt.block_on(fut))))
        .map_err(panic_to_py_err)?
        .map_err(PyErr::from)
}

/// Runs blocking Rust work (file or network I/O, model loading) with the GIL released,
/// inside the runtime's context.
pub(crate) fn blocking<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> FlowResult<T> + Send,
    T: Send,
{
    let rt = runtime()?;
    py.detach(|| {
        let _guard = rt.enter();
        catch_unwind(AssertUnwindSafe(f))
    })
    .map_err(panic_to_py_err)?
    .map_err(PyErr::from)
}

/// FlowNet's native module. Import `flownet` rather than this.
#[pymodule]
fn _flownet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<ledger::Ledger>()?;
    m.add_class::<ledger::Account>()?;
    m.add_class::<ledger::SignedEnvelope>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::Task>()?;
    m.add_class::<client::Output>()?;
    m.add_class::<client::TokenStream>()?;
    m.add_class::<node::Node>()?;
    m.add_class::<node::ModelDecorator>()?;
    m.add_function(wrap_pyfunction!(cli::run_cli, m)?)?;
    Ok(())
}
