//! Conversions between Python values and the core's types.

use flownet_core::{Address, Amount};
use pyo3::{
    exceptions::PyTypeError,
    prelude::*,
    types::{PyBool, PyFloat, PyInt, PyString},
};

use crate::errors::FlowError;

/// A JSON value as the Python object `json.loads` makes of it.
pub fn json_to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| PyErr::from(FlowError::Other(anyhow::anyhow!(e))))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A Python object as JSON text, as `json.dumps` writes it (a `TypeError` for objects
/// JSON cannot hold).
pub fn py_to_json(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    obj.py()
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract()
}

/// An amount given as `str`, `int` or `decimal.Decimal`. Floats are refused: amounts
/// are exact.
pub fn amount_arg(obj: &Bound<'_, PyAny>) -> PyResult<Amount> {
    let text: String = if obj.is_instance_of::<PyString>() {
        obj.extract()?
    } else if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyFloat>() {
        return Err(PyTypeError::new_err(format!(
            "amounts are exact: give {} as a str or decimal.Decimal, e.g. \"0.5\"",
            obj.repr()?
        )));
    } else if obj.is_instance_of::<PyInt>() {
        obj.str()?.extract()?
    } else if is_decimal(obj)? {
        // Fixed-point notation: str() could give "1E+1".
        obj.py()
            .import("builtins")?
            .call_method1("format", (obj, "f"))?
            .extract()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "expected an amount as str, int or decimal.Decimal, got {}",
            obj.get_type().name()?
        )));
    };
    text.parse::<Amount>()
        .map_err(|e| PyErr::from(FlowError::Core(e)))
}

fn is_decimal(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let decimal = obj.py().import("decimal")?.getattr("Decimal")?;
    obj.is_instance(&decimal)
}

/// An amount as a `decimal.Decimal`.
pub fn amount_to_py(py: Python<'_>, amount: Amount) -> PyResult<Py<PyAny>> {
    Ok(py
        .import("decimal")?
        .getattr("Decimal")?
        .call1((amount.to_string(),))?
        .unbind())
}

/// An address given as `0x` and 16 hex digits.
pub fn address_arg(s: &str) -> PyResult<Address> {
    s.parse::<Address>()
        .map_err(|e| PyErr::from(FlowError::Core(e)))
}
