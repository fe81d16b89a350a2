//! JSON-Cadence, the interchange format of Cadence values: transaction and
//! script arguments, script results and event payloads.
//!
//! Encoding is compact JSON with keys in the order the Flow SDKs write them
//! (`type` before `value`, `id` before `fields`) and non-ASCII text as UTF-8,
//! so the argument bytes a transaction signs are the same in every SDK.

use std::fmt::Write as _;

use flownet_core::Address;

use super::{FlowError, Result};

/// The integer types, whose values JSON-Cadence writes as decimal strings.
pub const INTEGER_TYPES: [&str; 20] = [
    "Int", "Int8", "Int16", "Int32", "Int64", "Int128", "Int256", "UInt", "UInt8", "UInt16",
    "UInt32", "UInt64", "UInt128", "UInt256", "Word8", "Word16", "Word32", "Word64", "Word128",
    "Word256",
];

const COMPOSITE_TYPES: [&str; 5] = ["Struct", "Resource", "Event", "Contract", "Enum"];

/// A Cadence value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Void,
    Optional(Option<Box<Value>>),
    Bool(bool),
    String(String),
    Character(String),
    Address(Address),
    /// Any integer type (`UInt64`, `Int`, `Word8`, …) with its decimal text.
    Integer {
        ty: String,
        value: String,
    },
    /// `UFix64` in units of 10⁻⁸.
    UFix64(u64),
    /// `Fix64` in units of 10⁻⁸.
    Fix64(i64),
    Array(Vec<Value>),
    Dictionary(Vec<(Value, Value)>),
    /// `Struct`, `Resource`, `Event`, `Contract` or `Enum`.
    Composite {
        kind: String,
        id: String,
        fields: Vec<(String, Value)>,
    },
    Path {
        domain: String,
        identifier: String,
    },
    /// Any other value (types, capabilities, functions, …), kept as its JSON.
    Other(serde_json::Value),
}

impl Value {
    pub fn string(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }

    pub fn integer(ty: &str, value: impl ToString) -> Self {
        Self::Integer {
            ty: ty.to_owned(),
            value: value.to_string(),
        }
    }

    pub fn uint64(v: u64) -> Self {
        Self::integer("UInt64", v)
    }

    pub fn uint32(v: u32) -> Self {
        Self::integer("UInt32", v)
    }

    pub fn uint8(v: u8) -> Self {
        Self::integer("UInt8", v)
    }

    pub fn optional(v: Option<Value>) -> Self {
        Self::Optional(v.map(Box::new))
    }

    /// The compact JSON-Cadence text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// The JSON-Cadence bytes, as transaction and script arguments carry them.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        self.to_json().into_bytes()
    }

    fn write(&self, out: &mut String) {
        let ty = |out: &mut String, t: &str| {
            out.push_str("{\"type\":");
            push_str(out, t);
        };
        match self {
            Self::Void => out.push_str("{\"type\":\"Void\"}"),
            Self::Optional(v) => {
                ty(out, "Optional");
                out.push_str(",\"value\":");
                match v {
                    Some(v) => v.write(out),
                    None => out.push_str("null"),
                }
                out.push('}');
            }
            Self::Bool(b) => {
                ty(out, "Bool");
                let _ = write!(out, ",\"value\":{b}}}");
            }
            Self::String(s) | Self::Character(s) => {
                ty(
                    out,
                    if matches!(self, Self::String(_)) {
                        "String"
                    } else {
                        "Character"
                    },
                );
                out.push_str(",\"value\":");
                push_str(out, s);
                out.push('}');
            }
            Self::Address(a) => {
                ty(out, "Address");
                out.push_str(",\"value\":");
                push_str(out, &a.to_string());
                out.push('}');
            }
            Self::Integer { ty: t, value } => {
                ty(out, t);
                out.push_str(",\"value\":");
                push_str(out, value);
                out.push('}');
            }
            Self::UFix64(units) => {
                ty(out, "UFix64");
                out.push_str(",\"value\":");
                push_str(out, &format_fix(u128::from(*units), false));
                out.push('}');
            }
            Self::Fix64(units) => {
                ty(out, "Fix64");
                out.push_str(",\"value\":");
                push_str(
                    out,
                    &format_fix(u128::from(units.unsigned_abs()), *units < 0),
                );
                out.push('}');
            }
            Self::Array(items) => {
                ty(out, "Array");
                out.push_str(",\"value\":[");
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push_str("]}");
            }
            Self::Dictionary(entries) => {
                ty(out, "Dictionary");
                out.push_str(",\"value\":[");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"key\":");
                    k.write(out);
                    out.push_str(",\"value\":");
                    v.write(out);
                    out.push('}');
                }
                out.push_str("]}");
            }
            Self::Composite { kind, id, fields } => {
                ty(out, kind);
                out.push_str(",\"value\":{\"id\":");
                push_str(out, id);
                out.push_str(",\"fields\":[");
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"name\":");
                    push_str(out, name);
                    out.push_str(",\"value\":");
                    v.write(out);
                    out.push('}');
                }
                out.push_str("]}}");
            }
            Self::Path { domain, identifier } => {
                ty(out, "Path");
                out.push_str(",\"value\":{\"domain\":");
                push_str(out, domain);
                out.push_str(",\"identifier\":");
                push_str(out, identifier);
                out.push_str("}}");
            }
            Self::Other(v) => out.push_str(&v.to_string()),
        }
    }

    /// Parses JSON-Cadence text.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let json: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| FlowError::Cadence(format!("not JSON: {e}")))?;
        Self::from_json_value(&json)
    }

    /// Reads a parsed JSON-Cadence value.
    pub fn from_json_value(json: &serde_json::Value) -> Result<Self> {
        let bad = |what: &str| FlowError::Cadence(format!("{what} in {json}"));
        let obj = json.as_object().ok_or_else(|| bad("not an object"))?;
        let ty = obj
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or_else(|| bad("no type"))?;
        let value = obj.get("value").unwrap_or(&serde_json::Value::Null);
        let text = || value.as_str().ok_or_else(|| bad("value is not a string"));
        Ok(match ty {
            "Void" => Self::Void,
            "Optional" => {
                if value.is_null() {
                    Self::Optional(None)
                } else {
                    Self::Optional(Some(Box::new(Self::from_json_value(value)?)))
                }
            }
            "Bool" => Self::Bool(value.as_bool().ok_or_else(|| bad("not a bool"))?),
            "String" => Self::String(text()?.to_owned()),
            "Character" => Self::Character(text()?.to_owned()),
            "Address" => Self::Address(parse_address(text()?)?),
            "UFix64" => {
                let (units, negative) = parse_fix(text()?)?;
                if negative {
                    return Err(bad("negative UFix64"));
                }
                Self::UFix64(u64::try_from(units).map_err(|_| bad("UFix64 out of range"))?)
            }
            "Fix64" => {
                let (units, negative) = parse_fix(text()?)?;
                let units = i128::try_from(units).map_err(|_| bad("Fix64 out of range"))?;
                let signed = if negative { -units } else { units };
                Self::Fix64(i64::try_from(signed).map_err(|_| bad("Fix64 out of range"))?)
            }
            t if INTEGER_TYPES.contains(&t) => {
                let v = text()?;
                let digits = v.strip_prefix('-').unwrap_or(v);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("integer is not decimal"));
                }
                Self::Integer {
                    ty: t.to_owned(),
                    value: v.to_owned(),
                }
            }
            "Array" => Self::Array(
                value
                    .as_array()
                    .ok_or_else(|| bad("not an array"))?
                    .iter()
                    .map(Self::from_json_value)
                    .collect::<Result<_>>()?,
            ),
            "Dictionary" => Self::Dictionary(
                value
                    .as_array()
                    .ok_or_else(|| bad("not an array"))?
                    .iter()
                    .map(|e| {
                        Ok((
                            Self::from_json_value(e.get("key").ok_or_else(|| bad("no key"))?)?,
                            Self::from_json_value(e.get("value").ok_or_else(|| bad("no value"))?)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            t if COMPOSITE_TYPES.contains(&t) => Self::Composite {
                kind: t.to_owned(),
                id: value
                    .get("id")
                    .and_then(|i| i.as_str())
                    .ok_or_else(|| bad("no id"))?
                    .to_owned(),
                fields: value
                    .get("fields")
                    .and_then(|f| f.as_array())
                    .ok_or_else(|| bad("no fields"))?
                    .iter()
                    .map(|f| {
                        Ok((
                            f.get("name")
                                .and_then(|n| n.as_str())
                                .ok_or_else(|| bad("field without name"))?
                                .to_owned(),
                            Self::from_json_value(
                                f.get("value").ok_or_else(|| bad("field without value"))?,
                            )?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            },
            "Path" => Self::Path {
                domain: value
                    .get("domain")
                    .and_then(|d| d.as_str())
                    .ok_or_else(|| bad("no domain"))?
                    .to_owned(),
                identifier: value
                    .get("identifier")
                    .and_then(|d| d.as_str())
                    .ok_or_else(|| bad("no identifier"))?
                    .to_owned(),
            },
            _ => Self::Other(json.clone()),
        })
    }

    // --- accessors for decoding results --------------------------------------

    fn mismatch(&self, want: &str) -> FlowError {
        FlowError::Cadence(format!("expected {want}, got {}", self.to_json()))
    }

    /// The value inside an optional (`None` for nil); other values are returned as is.
    pub fn into_option(self) -> Option<Value> {
        match self {
            Self::Optional(v) => v.map(|b| *b),
            other => Some(other),
        }
    }

    pub fn as_str(&self) -> Result<&str> {
        match self {
            Self::String(s) | Self::Character(s) => Ok(s),
            other => Err(other.mismatch("a String")),
        }
    }

    pub fn as_bool(&self) -> Result<bool> {
        match self {
            Self::Bool(b) => Ok(*b),
            other => Err(other.mismatch("a Bool")),
        }
    }

    pub fn as_address(&self) -> Result<Address> {
        match self {
            Self::Address(a) => Ok(*a),
            other => Err(other.mismatch("an Address")),
        }
    }

    pub fn as_u64(&self) -> Result<u64> {
        match self {
            Self::Integer { value, .. } => value.parse().map_err(|_| self.mismatch("a u64")),
            other => Err(other.mismatch("an integer")),
        }
    }

    pub fn as_ufix64(&self) -> Result<u64> {
        match self {
            Self::UFix64(u) => Ok(*u),
            other => Err(other.mismatch("a UFix64")),
        }
    }

    pub fn as_array(&self) -> Result<&[Value]> {
        match self {
            Self::Array(items) => Ok(items),
            other => Err(other.mismatch("an Array")),
        }
    }

    /// A composite's field by name.
    pub fn field(&self, name: &str) -> Result<&Value> {
        match self {
            Self::Composite { fields, .. } => fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v)
                .ok_or_else(|| self.mismatch(&format!("a field {name:?}"))),
            other => Err(other.mismatch("a composite")),
        }
    }

    /// An optional field's value, `None` when the field is nil.
    pub fn opt_field(&self, name: &str) -> Result<Option<&Value>> {
        match self.field(name)? {
            Self::Optional(None) => Ok(None),
            Self::Optional(Some(v)) => Ok(Some(v)),
            v => Ok(Some(v)),
        }
    }
}

fn push_str(out: &mut String, s: &str) {
    // serde_json's escaping is the one the SDKs use: quotes, backslashes and
    // control characters only, everything else as UTF-8.
    out.push_str(&serde_json::to_string(s).expect("a str always serialises"));
}

/// `units` of 10⁻⁸ as `whole.8 digits`, as the SDKs write fixed-point numbers.
fn format_fix(units: u128, negative: bool) -> String {
    let sign = if negative && units != 0 { "-" } else { "" };
    format!("{sign}{}.{:08}", units / 100_000_000, units % 100_000_000)
}

fn parse_fix(s: &str) -> Result<(u128, bool)> {
    let bad = || FlowError::Cadence(format!("invalid fixed-point number {s:?}"));
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty()
        || frac.len() > 8
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<8}").parse().map_err(|_| bad())?
    };
    Ok((whole * 100_000_000 + frac, negative))
}

/// Parses `0x` and up to 16 hex digits (Cadence may drop leading zeros).
pub fn parse_address(s: &str) -> Result<Address> {
    let hex_part = s.strip_prefix("0x").unwrap_or(s);
    if hex_part.is_empty() || hex_part.len() > 16 {
        return Err(FlowError::Cadence(format!("invalid address {s:?}")));
    }
    let padded = format!("{hex_part:0>16}");
    let mut bytes = [0u8; 8];
    hex::decode_to_slice(&padded, &mut bytes)
        .map_err(|_| FlowError::Cadence(format!("invalid address {s:?}")))?;
    Ok(Address(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_sdks() {
        assert_eq!(
            Value::uint64(7).to_json(),
            r#"{"type":"UInt64","value":"7"}"#
        );
        assert_eq!(
            Value::UFix64(150_000_000).to_json(),
            r#"{"type":"UFix64","value":"1.50000000"}"#
        );
        assert_eq!(
            Value::optional(None).to_json(),
            r#"{"type":"Optional","value":null}"#
        );
        assert_eq!(
            Value::Address(Address([0, 0, 0, 0, 0, 0, 0, 1])).to_json(),
            r#"{"type":"Address","value":"0x0000000000000001"}"#
        );
        assert_eq!(
            Value::string("é\"\n").to_json(),
            "{\"type\":\"String\",\"value\":\"é\\\"\\n\"}"
        );
        let composite = Value::Composite {
            kind: "Struct".into(),
            id: "A.01.C.S".into(),
            fields: vec![("x".into(), Value::Bool(true))],
        };
        assert_eq!(
            composite.to_json(),
            r#"{"type":"Struct","value":{"id":"A.01.C.S","fields":[{"name":"x","value":{"type":"Bool","value":true}}]}}"#
        );
    }

    #[test]
    fn round_trips_every_shape() {
        let values = [
            Value::Void,
            Value::Bool(false),
            Value::string("héllo ✓"),
            Value::Fix64(-150_000_000),
            Value::Fix64(-1),
            Value::UFix64(u64::MAX),
            Value::integer("Int256", "-123456789012345678901234567890"),
            Value::Array(vec![
                Value::uint8(1),
                Value::optional(Some(Value::uint32(2))),
            ]),
            Value::Dictionary(vec![(Value::string("k"), Value::uint64(3))]),
            Value::Path {
                domain: "storage".into(),
                identifier: "flowNetTokenVault".into(),
            },
        ];
        for v in values {
            let back = Value::from_json(&v.to_json_bytes()).unwrap();
            assert_eq!(back, v, "{}", v.to_json());
            assert_eq!(back.to_json(), v.to_json());
        }
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            r#"{"type":"UInt64","value":"x"}"#,
            r#"{"type":"UFix64","value":"1.123456789"}"#,
            r#"{"type":"UFix64","value":"-1.0"}"#,
            r#"{"type":"Address","value":"0xzz"}"#,
            r#"{"value":"1"}"#,
            "[]",
        ] {
            assert!(Value::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            parse_address("0x1").unwrap(),
            Address([0, 0, 0, 0, 0, 0, 0, 1])
        );
    }
}
