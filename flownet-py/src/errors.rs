//! The one mapping from FlowNet's errors to the exception classes of
//! `flownet.exceptions`: a core error becomes the subclass of `FlowNetError` named after
//! its kind, anything else the base class. Panics become `FlowNetError` too.

use std::any::Any;

use flownet_core::ErrorKind;
use pyo3::{
    prelude::*,
    sync::PyOnceLock,
    types::{PyDict, PyType},
};

/// An error on its way to Python.
#[derive(Debug)]
pub enum FlowError {
    Core(flownet_core::Error),
    Other(anyhow::Error),
}

/// Result with [`FlowError`].
pub type FlowResult<T> = Result<T, FlowError>;

impl From<flownet_core::Error> for FlowError {
    fn from(e: flownet_core::Error) -> Self {
        Self::Core(e)
    }
}

impl From<anyhow::Error> for FlowError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

impl From<flownet_node::Error> for FlowError {
    fn from(e: flownet_node::Error) -> Self {
        match e {
            flownet_node::Error::Core(e) => Self::Core(e),
            other => Self::Other(other.into()),
        }
    }
}

impl From<flownet_chain::Error> for FlowError {
    fn from(e: flownet_chain::Error) -> Self {
        Self::Core(e.into())
    }
}

impl From<flownet_infer::Error> for FlowError {
    fn from(e: flownet_infer::Error) -> Self {
        Self::Core(e.into())
    }
}

impl From<FlowError> for PyErr {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Core(e) => to_py_err(Some(e.kind()), e.to_string()),
            FlowError::Other(e) => {
                let kind = flownet_cli::error_kind(&e);
                to_py_err(kind, format!("{e:#}"))
            }
        }
    }
}

/// The kind's name as scripts see it (`insufficient_funds`), the same as in the CLI's
/// `--json` errors.
pub fn kind_name(kind: ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The exception for an error of `kind` (or of no core kind) with `message`.
pub fn to_py_err(kind: Option<ErrorKind>, message: String) -> PyErr {
    Python::attach(|py| match exception_class(py, kind) {
        Ok(class) => PyErr::from_type(class, message),
        Err(e) => e,
    })
}

fn exception_class(py: Python<'_>, kind: Option<ErrorKind>) -> PyResult<Bound<'_, PyType>> {
    static BY_KIND: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let by_kind = BY_KIND
        .get_or_try_init(py, || -> PyResult<Py<PyDict>> {
            let module = py.import("flownet.exceptions")?;
            Ok(module.getattr("BY_KIND")?.cast_into::<PyDict>()?.unbind())
        })?
        .bind(py);
    let key = kind.map(kind_name).unwrap_or_default();
    let class = match by_kind.get_item(&key)? {
        Some(c) => c,
        None => py.import("flownet.exceptions")?.getattr("FlowNetError")?,
    };
    Ok(class.cast_into::<PyType>()?)
}

/// A panic caught before it reached Python.
pub fn panic_to_py_err(payload: Box<dyn Any + Send>) -> PyErr {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    to_py_err(
        None,
        format!("internal error in flownet (please report it): {message}"),
    )
}
