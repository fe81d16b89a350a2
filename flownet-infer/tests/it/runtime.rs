use std::path::Path;

use flownet_infer::{Error, init_runtime, runtime_path};

use crate::common;

#[test]
fn a_missing_library_is_a_clear_error_not_a_panic() {
    let bogus = Path::new("/nonexistent/onnxruntime/libonnxruntime.so.1.32.0");
    let err = init_runtime(Some(bogus)).unwrap_err();
    assert!(matches!(err, Error::RuntimeLoad { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&bogus.display().to_string()), "{msg}");
    assert!(
        msg.contains("ORT_DYLIB_PATH") && msg.contains("scripts/setup.sh"),
        "{msg}"
    );
}

#[test]
fn init_is_idempotent() {
    common::engine();
    init_runtime(None).unwrap();
    init_runtime(Some(&common::runtime_path())).unwrap();
    let loaded = runtime_path().expect("the engine loaded the runtime");
    assert_eq!(
        loaded.canonicalize().unwrap(),
        common::runtime_path().canonicalize().unwrap()
    );
}

#[test]
fn a_second_different_library_is_refused() {
    common::engine();
    // Any existing file other than the loaded library.
    let other = tempfile::NamedTempFile::new().unwrap();
    let msg = init_runtime(Some(other.path())).unwrap_err().to_string();
    assert!(msg.contains("already loaded"), "{msg}");
}
