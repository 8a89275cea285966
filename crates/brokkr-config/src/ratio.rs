//! A share from 0 to 1 (`rollout.max_error_ratio = 0.05`), kept in parts per million so that settings stay `Eq`
//! and a value compares the same on every replica.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

/// Parts per million in one.
const MILLION: u32 = 1_000_000;

/// A share from 0 to 1, to the millionth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Ratio(u32);

impl Ratio {
    /// `parts` millionths, at most one whole.
    #[must_use]
    pub const fn from_millionths(parts: u32) -> Self {
        Self(if parts > MILLION { MILLION } else { parts })
    }

    /// The share as a float, for comparisons with a measured one.
    #[must_use]
    pub fn get(self) -> f64 {
        f64::from(self.0) / f64::from(MILLION)
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.get())
    }
}

/// A number from 0 to 1, integer or float (`0`, `1` and `0.05` alike).
impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Number {
            Integer(i64),
            Float(f64),
        }
        #[allow(clippy::cast_precision_loss)]
        let value = match Number::deserialize(deserializer)? {
            Number::Integer(n) => n as f64,
            Number::Float(f) => f,
        };
        if !(0.0..=1.0).contains(&value) {
            return Err(D::Error::custom(format!("expected a share from 0 to 1 (0.05 for 5%), found {value}")));
        }
        // In range, so the product is from 0 to a million.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Self((value * f64::from(MILLION)).round() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        r: Ratio,
    }

    fn read(text: &str) -> Result<Ratio, String> {
        toml::from_str::<Holder>(text).map(|h| h.r).map_err(|e| e.to_string())
    }

    #[test]
    fn shares_from_0_to_1_are_read_and_anything_else_is_refused_with_the_range() {
        assert_eq!(read("r = 0.05"), Ok(Ratio::from_millionths(50_000)));
        assert_eq!(read("r = 0"), Ok(Ratio::default()));
        assert_eq!(read("r = 1"), Ok(Ratio::from_millionths(MILLION)));
        for bad in ["r = 1.5", "r = -0.1", "r = nan", "r = inf", "r = 5"] {
            assert!(read(bad).is_err_and(|e| e.contains("from 0 to 1")), "{bad}");
        }
        assert!(read("r = \"5%\"").is_err());
        assert_eq!(Ratio::from_millionths(50_000).to_string(), "0.05");
    }
}
