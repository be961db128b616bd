//! Input rules shared by every endpoint, each returning a message that names what is wrong.

use serde::{Deserialize, Deserializer};

pub const MAX_TENANT_CHARS: usize = 128;

/// For optional request fields: leaving one out means "unset", but an explicit `null` is a type
/// error naming the field, as the API contract declares none of them nullable.
pub fn non_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Tenant names appear in URLs, logs and CSV: letters, digits, `.`, `_`, `-`, at most 128.
pub fn tenant(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TENANT_CHARS {
        return Err(format!("tenant must be 1 to {MAX_TENANT_CHARS} characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("tenant may contain only letters, digits, '.', '_' and '-'".into());
    }
    Ok(())
}

/// A tenant that tokens and tenant admins may be issued for: names starting with `_` belong to the
/// control plane itself (`_system` holds key rotations), so no caller can write into those chains.
pub fn assignable_tenant(name: &str) -> Result<(), String> {
    tenant(name)?;
    if name.starts_with('_') {
        return Err(format!(
            "tenant {name:?} is reserved: names starting with '_' belong to the control plane"
        ));
    }
    Ok(())
}

/// An identifier (draft, approval, token or event id): no control characters (Postgres cannot
/// even compare a NUL), at most 128 characters.
pub fn id(field: &str, value: &str) -> Result<(), String> {
    required_text(field, value, 128)
}

/// A required text field: not blank, at most `max` characters, no control characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    optional_text(field, value, max)
}

/// An optional text field: at most `max` characters, no control characters other than newlines
/// and tabs.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("{field} must be at most {max} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert!(tenant("acme-corp.eu_1").is_ok());
        for bad in ["", "a b", "a/b", "ü", &"x".repeat(129)] {
            assert!(tenant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_fields_name_themselves() {
        assert_eq!(
            required_text("name", " ", 10).unwrap_err(),
            "name must not be empty"
        );
        assert!(
            required_text("name", "abc", 2)
                .unwrap_err()
                .contains("at most 2")
        );
        assert!(
            optional_text("reason", "a\u{0}b", 10)
                .unwrap_err()
                .contains("control")
        );
        assert!(optional_text("reason", "line\nline", 10).is_ok());
    }
}
