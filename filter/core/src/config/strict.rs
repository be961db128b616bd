//! serde's derive reads a struct from a JSON array as well as from an object (fields by position),
//! so `"rate_limits": [null, null]` would pass for `{}`. Configuration an operator sends is refused
//! instead when its shape is not the documented one.

use serde::de::{DeserializeOwned, Error, Unexpected};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A struct field that must be a JSON object.
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    from_object(Value::deserialize(d)?)
}

/// A list whose items must be JSON objects.
pub fn objects<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Value>::deserialize(d)?
        .into_iter()
        .map(from_object)
        .collect()
}

fn from_object<E: Error, T: DeserializeOwned>(value: Value) -> Result<T, E> {
    if !value.is_object() {
        return Err(E::invalid_type(unexpected(&value), &"an object"));
    }
    // The path inside the object keeps the error naming the field that is wrong.
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        E::custom(format!("{path}: {}", e.into_inner()))
    })
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("a number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: Option<u8>,
    }

    #[derive(Debug, Deserialize)]
    struct Outer {
        #[serde(deserialize_with = "super::object")]
        one: Inner,
        #[serde(default, deserialize_with = "super::objects")]
        many: Vec<Inner>,
    }

    #[test]
    fn arrays_are_refused_where_objects_are_documented() {
        let ok: Outer = serde_json::from_value(json!({"one": {"a": 1}, "many": [{}]})).unwrap();
        assert_eq!(
            (ok.one, ok.many),
            (Inner { a: Some(1) }, vec![Inner { a: None }])
        );
        let err = serde_json::from_value::<Outer>(json!({"one": [1]})).unwrap_err();
        assert!(err.to_string().contains("expected an object"), "{err}");
        assert!(serde_json::from_value::<Outer>(json!({"one": {}, "many": [[1]]})).is_err());
        let err = serde_json::from_value::<Outer>(json!({"one": {"a": "x"}})).unwrap_err();
        assert!(err.to_string().starts_with("a: invalid type"), "{err}");
        assert!(serde_json::from_value::<Outer>(json!({"one": {}, "many": {}})).is_err());
    }
}
