//! Loading the ONNX Runtime shared library, once per process.
//!
//! `ort` is built with `load-dynamic`: the library is opened at run time, and the first
//! `ort` call without it panics. Every entry point of this crate therefore goes through
//! [`init_runtime`] (or [`environment`]) before it touches `ort`.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock, PoisonError},
};

use ort::environment::Environment;

use crate::{Error, Result};

/// The environment variable naming the runtime library, the same one `ort` reads.
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// The process-wide runtime: `ort` allows one environment per process, and sessions
/// borrow it, so it lives in a static for the rest of the process.
struct Runtime {
    path: PathBuf,
    environment: Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises first-time initialisation so two threads never race to open the library.
static INIT: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime from `path`, or else from `ORT_DYLIB_PATH`, and creates the
/// process's `ort` environment.
///
/// Idempotent: once the runtime is loaded, further calls return `Ok(())` if they name
/// no path or the same file, and an error if they name a different one (a process can
/// hold only one runtime). Returns [`Error::RuntimeNotFound`] when no path is known and
/// [`Error::RuntimeLoad`] when the file is missing or is not a usable runtime; it never
/// panics.
pub fn init_runtime(path: Option<&Path>) -> Result<()> {
    environment(path).map(|_| ())
}

/// The runtime's library path, if it has been loaded.
pub fn runtime_path() -> Option<&'static Path> {
    RUNTIME.get().map(|r| r.path.as_path())
}

/// The process's `ort` environment, loading the runtime first if needed (see
/// [`init_runtime`]).
pub(crate) fn environment(path: Option<&Path>) -> Result<&'static Environment> {
    let explicit = path.map(Path::to_path_buf);
    if let Some(runtime) = RUNTIME.get() {
        return check_same(runtime, explicit.as_deref());
    }
    let _guard = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = RUNTIME.get() {
        return check_same(runtime, explicit.as_deref());
    }
    let path = resolve_path(explicit, std::env::var_os(ORT_DYLIB_PATH))?;
    let runtime = load(&path)?;
    Ok(&RUNTIME.get_or_init(|| runtime).environment)
}

/// The library to load: the explicit path, else a non-empty `ORT_DYLIB_PATH`.
fn resolve_path(explicit: Option<PathBuf>, env: Option<OsString>) -> Result<PathBuf> {
    explicit
        .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .ok_or(Error::RuntimeNotFound)
}

fn load(path: &Path) -> Result<Runtime> {
    let load_error = |reason: String| Error::RuntimeLoad {
        path: path.to_path_buf(),
        reason,
    };
    // `ort` resolves relative paths against the executable's directory, which surprises
    // people running from the workspace root: resolve them against the working directory.
    let path = std::path::absolute(path).map_err(|e| load_error(e.to_string()))?;
    // Checked up front because dlopen's message for a missing file is cryptic.
    if !path.is_file() {
        return Err(load_error("no such file".into()));
    }
    let builder = ort::init_from(&path).map_err(|e| load_error(e.to_string()))?;
    let environment = builder
        .with_name("flownet")
        .with_telemetry(false)
        .build()
        .map_err(Error::ort("creating the environment"))?;
    tracing::info!(path = %path.display(), "loaded ONNX Runtime");
    Ok(Runtime { path, environment })
}

fn check_same(runtime: &'static Runtime, path: Option<&Path>) -> Result<&'static Environment> {
    let Some(path) = path else {
        return Ok(&runtime.environment);
    };
    let same = match (path.canonicalize(), runtime.path.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        Ok(&runtime.environment)
    } else if !path.is_file() {
        Err(Error::RuntimeLoad {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        })
    } else {
        Err(Error::RuntimeLoad {
            path: path.to_path_buf(),
            reason: format!(
                "this process already loaded ONNX Runtime from {}, and a process can hold only one",
                runtime.path.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefers_the_explicit_path() {
        let got = resolve_path(Some("/a/lib.so".into()), Some("/b/lib.so".into())).unwrap();
        assert_eq!(got, PathBuf::from("/a/lib.so"));
        let got = resolve_path(None, Some("/b/lib.so".into())).unwrap();
        assert_eq!(got, PathBuf::from("/b/lib.so"));
    }

    #[test]
    fn no_path_is_a_clear_error() {
        for env in [None, Some(OsString::new())] {
            let err = resolve_path(None, env).unwrap_err();
            assert!(matches!(err, Error::RuntimeNotFound));
            let msg = err.to_string();
            assert!(
                msg.contains("ORT_DYLIB_PATH") && msg.contains("scripts/setup.sh"),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_a_library_is_an_error_not_a_panic() {
        // No test in this binary loads the real runtime, so this reaches dlopen.
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), b"not a shared library").unwrap();
        let err = init_runtime(Some(file.path())).unwrap_err();
        assert!(matches!(err, Error::RuntimeLoad { .. }), "{err}");
        assert!(err.to_string().contains("ORT_DYLIB_PATH"), "{err}");
        assert!(runtime_path().is_none());
    }
}
