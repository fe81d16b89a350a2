//! Typed access to a request's `params`. Unknown keys are ignored so that clients can
//! send parameters meant for other models; a known key with a wrong type or value is an
//! [`Error::InvalidInput`] that names the key and the accepted values. A JSON `null`
//! means "not set", as in the manifests' `defaults`.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use crate::{Error, Result};

/// The value of `key`, or `None` when it is absent or null.
fn get<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    params.get(key).filter(|v| !v.is_null())
}

/// An unsigned integer in `range`.
pub(crate) fn uint(
    params: &Map<String, Value>,
    key: &str,
    range: RangeInclusive<u64>,
) -> Result<Option<u64>> {
    let Some(value) = get(params, key) else {
        return Ok(None);
    };
    match value.as_u64() {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(Error::InvalidInput(format!(
            "params.{key} must be an integer from {} to {}, got {value}",
            range.start(),
            range.end()
        ))),
    }
}

/// One of `allowed` strings.
pub(crate) fn choice<'a>(
    params: &Map<String, Value>,
    key: &str,
    allowed: &[&'a str],
) -> Result<Option<&'a str>> {
    let Some(value) = get(params, key) else {
        return Ok(None);
    };
    value
        .as_str()
        .and_then(|s| allowed.iter().copied().find(|a| *a == s))
        .map(Some)
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "params.{key} must be one of {allowed:?}, got {value}"
            ))
        })
}

/// A finite number in `range`.
pub(crate) fn float(
    params: &Map<String, Value>,
    key: &str,
    range: RangeInclusive<f64>,
) -> Result<Option<f64>> {
    let Some(value) = get(params, key) else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(x) if x.is_finite() && range.contains(&x) => Ok(Some(x)),
        _ => Err(Error::InvalidInput(format!(
            "params.{key} must be a number from {} to {}, got {value}",
            range.start(),
            range.end()
        ))),
    }
}

/// A string or an array of at most `max` strings, none of them empty (OpenAI's `stop`).
pub(crate) fn strings(
    params: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<Vec<String>>> {
    let Some(value) = get(params, key) else {
        return Ok(None);
    };
    let bad = || {
        Error::InvalidInput(format!(
            "params.{key} must be a non-empty string or an array of at most {max} non-empty \
             strings, got {value}"
        ))
    };
    let list: Vec<String> = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if list.len() > max || list.iter().any(String::is_empty) {
        return Err(bad());
    }
    Ok(Some(list))
}

/// The text a request stands for: its input blob (UTF-8, else an
/// [`Error::InvalidInput`] naming `model`, e.g. "an embedding model"), else its prompt.
pub(crate) fn text_input<'a>(
    request: &'a flownet_core::InferenceRequest,
    model: &str,
) -> Result<&'a str> {
    match &request.input {
        Some(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| Error::InvalidInput(format!("the input of {model} must be UTF-8 text"))),
        None => Ok(request.prompt.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn integers() {
        let p = params(json!({"a": 5, "b": null, "c": 5.5, "d": "5", "e": -1, "f": 101}));
        assert_eq!(uint(&p, "a", 1..=100).unwrap(), Some(5));
        assert_eq!(uint(&p, "b", 1..=100).unwrap(), None);
        assert_eq!(uint(&p, "missing", 1..=100).unwrap(), None);
        for key in ["c", "d", "e", "f"] {
            let msg = uint(&p, key, 1..=100).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("params.{key} must be an integer from 1 to 100")),
                "{msg}"
            );
        }
        let p = params(json!({"seed": u64::MAX}));
        assert_eq!(uint(&p, "seed", 0..=u64::MAX).unwrap(), Some(u64::MAX));
    }

    #[test]
    fn floats_and_strings() {
        let p = params(
            json!({"t": 0.5, "i": 2, "n": -1.0, "s": "x", "stop": ["a", "b"], "one": "a", "bad": ["a", 1], "empty": [""]}),
        );
        assert_eq!(float(&p, "t", 0.0..=2.0).unwrap(), Some(0.5));
        assert_eq!(float(&p, "i", 0.0..=2.0).unwrap(), Some(2.0));
        assert_eq!(float(&p, "missing", 0.0..=2.0).unwrap(), None);
        for key in ["n", "s"] {
            let msg = float(&p, key, 0.0..=2.0).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("params.{key} must be a number from 0 to 2")),
                "{msg}"
            );
        }
        assert_eq!(strings(&p, "stop", 4).unwrap().unwrap(), ["a", "b"]);
        assert_eq!(strings(&p, "one", 4).unwrap().unwrap(), ["a"]);
        assert!(strings(&p, "stop", 1).is_err());
        assert!(strings(&p, "bad", 4).is_err());
        assert!(strings(&p, "empty", 4).is_err());
        assert!(strings(&p, "t", 4).is_err());
    }

    #[test]
    fn choices() {
        let p = params(json!({"a": "gray", "b": 3, "c": "pink"}));
        assert_eq!(choice(&p, "a", &["terrain", "gray"]).unwrap(), Some("gray"));
        assert!(choice(&p, "b", &["terrain", "gray"]).is_err());
        let msg = choice(&p, "c", &["terrain", "gray"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            r#"params.c must be one of ["terrain", "gray"], got "pink""#
        );
    }
}
