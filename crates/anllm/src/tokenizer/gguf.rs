//! Typed reads of the GGUF metadata keys the tokenizer loaders need.

use candle_core::quantized::gguf_file::{Content, Value};

use crate::{Error, Result, TokenId};

pub(super) fn meta_str<'a>(content: &'a Content, key: &str) -> Result<Option<&'a str>> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::tokenizer(format!(
            "`{key}` is not a string: {other:?}"
        ))),
    }
}

pub(super) fn meta_array<'a>(content: &'a Content, key: &str) -> Result<Option<&'a [Value]>> {
    match content.metadata.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(_) => Err(Error::tokenizer(format!("`{key}` is not an array"))),
    }
}

pub(super) fn meta_u32(content: &Content, key: &str) -> Option<TokenId> {
    content
        .metadata
        .get(key)
        .and_then(as_i64)
        .and_then(|v| u32::try_from(v).ok())
}

pub(super) fn meta_bool(content: &Content, key: &str) -> Option<bool> {
    match content.metadata.get(key)? {
        Value::Bool(b) => Some(*b),
        other => as_i64(other).map(|v| v != 0),
    }
}

pub(super) fn as_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}
