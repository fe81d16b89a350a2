//! The `flownet` console script: the Rust command's own parser and verbs, with
//! `node serve --handler MODULE:OBJECT` served by this package.

use std::{
    panic::{AssertUnwindSafe, catch_unwind},
    sync::Once,
};

use anyhow::{Context as _, anyhow};
use flownet_cli::hooks::{self, Handler, HandlerContext};
use pyo3::prelude::*;

use crate::{engine::format_traceback, errors::panic_to_py_err, node::Node};

/// Runs the `flownet` command line `argv` (program name first), exactly as the Rust
/// binary does, and returns its exit code.
#[pyfunction]
pub fn run_cli(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    static HOOKS: Once = Once::new();
    let platform = py.import("platform")?;
    let implementation: String = platform.call_method0("python_implementation")?.extract()?;
    let version: String = platform.call_method0("python_version")?.extract()?;
    HOOKS.call_once(|| {
        hooks::set_handler_loader(Box::new(load_handler));
        hooks::set_frontend(&format!("Python package, {implementation} {version}"));
    });
    py.detach(|| catch_unwind(AssertUnwindSafe(|| flownet_cli::run(argv))))
        .map_err(panic_to_py_err)
}

/// Imports `module` and finds `object` (a `flownet.Node`) in it.
fn load_handler(spec: &str, context: &HandlerContext) -> anyhow::Result<Handler> {
    let (module, object) = spec
        .split_once(':')
        .filter(|(m, o)| !m.is_empty() && !o.is_empty())
        .with_context(|| {
            format!("--handler {spec:?}: expected MODULE:OBJECT, e.g. my_models.node:node")
        })?;
    Python::attach(|py| {
        let with_traceback = |e: PyErr| anyhow!("{}", format_traceback(py, &e));
        // As with `python -m`, modules in the current directory can be imported.
        let sys_path = py.import("sys")?.getattr("path")?;
        let cwd = py.import("os")?.call_method0("getcwd")?;
        if !sys_path.contains(&cwd)? {
            sys_path.call_method1("insert", (0, &cwd))?;
        }
        let mut found = py
            .import(module)
            .map_err(with_traceback)
            .with_context(|| format!("importing {module} for --handler"))?
            .into_any();
        for part in object.split('.') {
            found = found
                .getattr(part)
                .map_err(|_| anyhow!("module {module} has no {object}"))?;
        }
        let node = found.cast::<Node>().map_err(|_| {
            anyhow!(
                "--handler {spec} is a {}, not a flownet.Node",
                found
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )
        })?;
        node.get()
            .handler(py, context)
            .map_err(|e| anyhow!("{}", e.value(py)))
    })
}
