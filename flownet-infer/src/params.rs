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
