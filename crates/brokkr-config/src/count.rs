//! A count setting (`config_reload.history = 20`) that also reads `20.0`: Helm renders every number of a chart's
//! values as a float in `toToml`, so the chart's ConfigMap holds `history = 20.0`.

use serde::{Deserialize, Deserializer, de::Error};

/// An integer, or a float without a fractional part, that fits a `usize`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Integer(i64),
        Float(f64),
    }
    let whole = match Number::deserialize(deserializer)? {
        Number::Integer(n) => n,
        // Exact: `f64` holds every integer up to 2^53, far beyond any count here.
        #[allow(clippy::cast_possible_truncation)]
        Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
        Number::Float(f) => return Err(D::Error::custom(format!("expected a whole number, found {f}"))),
    };
    usize::try_from(whole).map_err(|_| D::Error::custom(format!("expected a count of 0 or more, found {whole}")))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "super::deserialize")]
        n: usize,
    }

    fn read(text: &str) -> Result<usize, String> {
        toml::from_str::<Holder>(text).map(|h| h.n).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_read_whether_written_as_integers_or_as_helm_writes_them() {
        assert_eq!(read("n = 20"), Ok(20));
        assert_eq!(read("n = 20.0"), Ok(20), "Helm's toToml");
        assert!(read("n = 2.5").is_err_and(|e| e.contains("whole number")));
        assert!(read("n = -1").is_err_and(|e| e.contains("0 or more")));
        assert!(read("n = \"20\"").is_err());
    }
}
