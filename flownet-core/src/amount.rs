//! Token amounts in fixed point, exactly like Flow's `UFix64`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::Error;

/// An amount of FLOWNET in units of 10⁻⁸ (Flow's `UFix64`). Arithmetic is checked:
/// amounts never wrap.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(pub u64);

impl Amount {
    /// Units in one FLOWNET.
    pub const UNITS_PER_TOKEN: u64 = 100_000_000;
    /// Zero tokens.
    pub const ZERO: Self = Self(0);

    /// `n` whole tokens.
    pub const fn tokens(n: u64) -> Self {
        Self(n * Self::UNITS_PER_TOKEN)
    }

    /// `self + other`, or [`Error::Overflow`].
    pub fn checked_add(self, other: Self) -> Result<Self, Error> {
        self.0.checked_add(other.0).map(Self).ok_or(Error::Overflow)
    }

    /// `self - other`, or [`Error::Overflow`] when `other` is larger.
    pub fn checked_sub(self, other: Self) -> Result<Self, Error> {
        self.0.checked_sub(other.0).map(Self).ok_or(Error::Overflow)
    }

    /// `self * num / den`, rounded down, computed without intermediate overflow.
    pub fn mul_div(self, num: u64, den: u64) -> Self {
        Self((u128::from(self.0) * u128::from(num) / u128::from(den)) as u64)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / Self::UNITS_PER_TOKEN;
        let frac = self.0 % Self::UNITS_PER_TOKEN;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let frac = format!("{frac:08}");
            write!(f, "{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl FromStr for Amount {
    type Err = Error;

    /// Parses a decimal token amount such as `12`, `0.5` or `0.00000001`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::InvalidInput(format!(
                "invalid amount {s:?}: expected a decimal like 0.5, at most 8 decimals"
            ))
        };
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
            || frac.len() > 8
        {
            return Err(bad());
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<8}").parse().map_err(|_| bad())?
        };
        whole
            .checked_mul(Self::UNITS_PER_TOKEN)
            .and_then(|w| w.checked_add(frac))
            .map(Self)
            .ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for (s, units) in [
            ("0", 0),
            ("1", 100_000_000),
            ("0.5", 50_000_000),
            ("0.00000001", 1),
            ("12.25", 1_225_000_000),
        ] {
            let a: Amount = s.parse().unwrap();
            assert_eq!(a.0, units, "{s}");
            assert_eq!(a.to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_amounts() {
        for s in [
            "",
            ".",
            "-1",
            "1.000000001",
            "abc",
            "1e5",
            "184467440737.09551616",
        ] {
            assert!(s.parse::<Amount>().is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn checked_arithmetic_never_wraps() {
        assert_eq!(
            Amount(u64::MAX).checked_add(Amount(1)),
            Err(Error::Overflow)
        );
        assert_eq!(Amount(0).checked_sub(Amount(1)), Err(Error::Overflow));
        assert_eq!(
            Amount(u64::MAX).mul_div(90, 100).0,
            (u128::from(u64::MAX) * 90 / 100) as u64
        );
    }
}
