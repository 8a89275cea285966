//! Ordering of ConfigMap versions by `metadata.resourceVersion`, as Kubernetes itself defines it since KEP-5504.

use std::cmp::Ordering;

/// Compares two resourceVersions of the same resource, the way apimachinery's
/// `resourceversion.CompareResourceVersion` does: both must be positive integers written without leading zeros
/// (of any length); a longer one is greater, equal lengths compare digit by digit. `None` when either is not
/// well formed (a storage that does not promise comparable versions): the caller must not assume an order then.
///
/// Written here because no Rust crate offers it; it is ten lines and mirrors the Go reference exactly.
#[must_use]
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let well_formed = |s: &str| !s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    if !well_formed(a) || !well_formed(b) {
        return None;
    }
    Some(a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_of_any_length_compare_by_value() {
        assert_eq!(compare("9", "10"), Some(Ordering::Less));
        assert_eq!(compare("123456789012345678901234567890", "99"), Some(Ordering::Greater));
        assert_eq!(compare("42", "42"), Some(Ordering::Equal));
    }

    #[test]
    fn versions_that_are_not_well_formed_have_no_order() {
        for bad in ["", "0", "012", "12a", "-1", " 1"] {
            assert_eq!(compare(bad, "5"), None, "{bad:?}");
            assert_eq!(compare("5", bad), None, "{bad:?}");
        }
    }
}
