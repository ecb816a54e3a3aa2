//! Converts a PHP `$message` into the bytes to publish: strings as they are, arrays and the
//! supported objects into a JSON tree that the core encodes exactly like PHP's `json_encode`
//! with JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION.
//!
//! Everything that json_encode would reject (invalid UTF-8, NAN/INF, recursion, too deep) and
//! what it would encode surprisingly (closures as `{}`, resources) is refused here, before
//! anything is sent.

use std::borrow::Cow;

use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::ClassEntry;
use once_cell::sync::OnceCell;
use qrpush_core::Error;
use serde_json::{Map, Number, Value};

/// json_encode's default depth limit.
const MAX_DEPTH: usize = 512;

/// The bytes of `message`: borrowed from the PHP string, or freshly encoded JSON.
pub fn to_payload(message: &Zval) -> Result<Cow<'_, [u8]>, Error> {
    let message = message.dereference();
    if let Some(s) = message.zend_str() {
        return Ok(Cow::Borrowed(s.as_bytes()));
    }
    if !(message.is_array() || message.is_object()) {
        return Err(Error::invalid_type(format!(
            "must be of type string|array|object, {} given",
            type_name(message)
        )));
    }
    let mut walker = Walker { path: Vec::new() };
    let tree = walker.value(message, 0)?;
    Ok(Cow::Owned(qrpush_core::json::encode(&tree)))
}

/// PHP's name for a value's type, as in its own TypeError messages.
pub fn type_name(z: &Zval) -> String {
    let z = z.dereference();
    if z.is_null() {
        "null".into()
    } else if z.is_bool() {
        "bool".into()
    } else if z.is_long() {
        "int".into()
    } else if z.is_double() {
        "float".into()
    } else if z.is_string() {
        "string".into()
    } else if z.is_array() {
        "array".into()
    } else if let Some(obj) = z.object() {
        obj.get_class_name().unwrap_or_else(|_| "object".into())
    } else if z.is_resource() {
        "resource".into()
    } else {
        "mixed".into()
    }
}

struct Walker {
    /// Arrays and objects being encoded, outermost first: meeting one again is recursion.
    path: Vec<*const ()>,
}

impl Walker {
    fn value(&mut self, z: &Zval, depth: usize) -> Result<Value, Error> {
        let z = z.dereference();
        let z = z.indirect().unwrap_or(z).dereference();
        if z.is_null() {
            Ok(Value::Null)
        } else if let Some(b) = z.bool() {
            Ok(Value::Bool(b))
        } else if let Some(n) = z.long() {
            Ok(Value::Number(n.into()))
        } else if let Some(f) = z.double() {
            Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| Error::invalid("contains NAN or INF, which JSON cannot represent"))
        } else if let Some(s) = z.zend_str() {
            Ok(Value::String(utf8(s.as_bytes())?.to_owned()))
        } else if let Some(array) = z.array() {
            self.nested(array as *const ZendHashTable as *const (), depth, |w| {
                w.array(array, depth)
            })
        } else if let Some(object) = z.object() {
            self.nested(object as *const ZendObject as *const (), depth, |w| {
                w.object(object, depth)
            })
        } else {
            Err(Error::invalid_type(format!(
                "contains a {}, which cannot be encoded as JSON",
                type_name(z)
            )))
        }
    }

    fn nested(
        &mut self,
        id: *const (),
        depth: usize,
        f: impl FnOnce(&mut Self) -> Result<Value, Error>,
    ) -> Result<Value, Error> {
        if depth >= MAX_DEPTH {
            return Err(Error::invalid(format!(
                "is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        if self.path.contains(&id) {
            return Err(Error::invalid(
                "contains a recursive reference, which JSON cannot represent",
            ));
        }
        self.path.push(id);
        let result = f(self);
        self.path.pop();
        result
    }

    /// A list (keys 0..n-1 in order) becomes a JSON array, anything else an object.
    fn array(&mut self, array: &ZendHashTable, depth: usize) -> Result<Value, Error> {
        let entries = entries(array)?;
        let is_list = entries
            .iter()
            .enumerate()
            .all(|(i, (k, _))| matches!(k, Key::Index(n) if *n == i as i64));
        if is_list {
            let mut list = Vec::with_capacity(entries.len());
            for (_, v) in entries {
                list.push(self.value(v, depth + 1)?);
            }
            Ok(Value::Array(list))
        } else {
            self.map(entries, depth)
        }
    }

    fn map(&mut self, entries: Vec<(Key, &Zval)>, depth: usize) -> Result<Value, Error> {
        let mut map = Map::with_capacity(entries.len());
        for (k, v) in entries {
            let key = match k {
                Key::Index(n) => n.to_string(),
                Key::Name(name) => name,
            };
            let value = self.value(v, depth + 1)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    fn object(&mut self, object: &ZendObject, depth: usize) -> Result<Value, Error> {
        let ce = object.get_class_entry();
        if let Some(json_serializable) = class("JsonSerializable") {
            if ce.instance_of(json_serializable) {
                // An exception thrown by jsonSerialize() stays pending and reaches the caller as is.
                let result = object
                    .try_call_method("jsonSerialize", vec![])
                    .map_err(|_| {
                        Error::invalid(format!(
                            "could not be encoded: {}::jsonSerialize() failed",
                            class_name(object)
                        ))
                    })?;
                // Like json_encode: returning $this means "my public properties", and the call
                // itself is not a nesting level.
                if let Some(same) = result.object() {
                    if std::ptr::eq(same, object) {
                        return self.public_properties(object, depth);
                    }
                }
                return self.value(&result, depth);
            }
        }
        if let Some(backed_enum) = class("BackedEnum") {
            if ce.instance_of(backed_enum) {
                let value = object
                    .get_properties()
                    .ok()
                    .and_then(|p| p.get("value"))
                    .ok_or_else(|| Error::invalid("contains a backed enum case without a value"))?;
                return self.value(value, depth);
            }
        }
        if std::ptr::eq(ce, ext_php_rs::zend::ce::stdclass()) {
            return self.public_properties(object, depth);
        }
        Err(Error::invalid_type(format!(
            "contains an object of class {}; only \\stdClass, \\JsonSerializable and \\BackedEnum objects can be published",
            class_name(object)
        )))
    }
}

impl Walker {
    /// An object's public properties as a JSON object (what json_encode does for plain objects).
    fn public_properties(&mut self, object: &ZendObject, depth: usize) -> Result<Value, Error> {
        let properties = object
            .get_properties()
            .map_err(|_| Error::invalid("contains an object whose properties cannot be read"))?;
        let entries = entries(properties)?;
        self.map(entries, depth)
    }
}

enum Key {
    Index(i64),
    Name(String),
}

/// The entries of a hash table in order, skipping the slots that json_encode skips (unset
/// declared properties, and mangled non-public property names).
fn entries(table: &ZendHashTable) -> Result<Vec<(Key, &Zval)>, Error> {
    let mut out = Vec::with_capacity(table.len());
    let mut iter = table.iter();
    while let Some((key, value)) = iter.next_zval() {
        let value_is_undef = value
            .indirect()
            .map(|v| v.get_type() == ext_php_rs::flags::DataType::Undef)
            .unwrap_or(false);
        if value_is_undef {
            continue;
        }
        if let Some(n) = key.long() {
            out.push((Key::Index(n), value));
        } else if let Some(name) = key.zend_str() {
            let bytes = name.as_bytes();
            if bytes.first() == Some(&0) {
                continue;
            }
            out.push((Key::Name(utf8(bytes)?.to_owned()), value));
        }
    }
    Ok(out)
}

fn utf8(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::invalid(format!(
            "contains malformed UTF-8 (at byte {}), which JSON cannot represent",
            e.valid_up_to()
        ))
    })
}

fn class_name(object: &ZendObject) -> String {
    object.get_class_name().unwrap_or_else(|_| "object".into())
}

/// Looks an internal class up once per process (their class entries never move).
fn class(name: &'static str) -> Option<&'static ClassEntry> {
    static JSON_SERIALIZABLE: OnceCell<Option<usize>> = OnceCell::new();
    static BACKED_ENUM: OnceCell<Option<usize>> = OnceCell::new();
    let (cell, key) = match name {
        "JsonSerializable" => (&JSON_SERIALIZABLE, "jsonserializable"),
        _ => (&BACKED_ENUM, "backedenum"),
    };
    let addr = cell.get_or_init(|| {
        crate::internal_class::find(key).map(|ce| ce as *const ClassEntry as usize)
    });
    // SAFETY: the address came from a `&'static ClassEntry` of an internal class, which lives
    // until the engine shuts down.
    addr.map(|a| unsafe { &*(a as *const ClassEntry) })
}
