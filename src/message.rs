//! Converts a PHP `$message` into the bytes to publish: strings as they are, arrays and the
//! supported objects encoded to JSON exactly like PHP's `json_encode` with
//! JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION.
//!
//! The encoding is one pass from the zvals into one buffer: this file only walks PHP values and
//! decides what they are; the core's `json` writer spells them (escaping, floats).
//!
//! Everything that json_encode would reject (invalid UTF-8, NAN/INF, recursion, too deep) and
//! what it would encode surprisingly (closures as `{}`, resources) is refused here, before
//! anything is sent: on an error the partly written buffer is dropped.

use std::borrow::Cow;

use ext_php_rs::flags::DataType;
use ext_php_rs::types::{ZendHashTable, ZendObject, Zval};
use ext_php_rs::zend::ClassEntry;
use once_cell::sync::OnceCell;
use qrpush_core::json;
use qrpush_core::Error;

/// json_encode's default depth limit.
const MAX_DEPTH: usize = 512;

/// Enough for a typical event (a few hundred bytes) without growing the buffer.
const INITIAL_CAPACITY: usize = 512;

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
    let mut encoder = Encoder {
        out: Vec::with_capacity(INITIAL_CAPACITY),
        path: Vec::new(),
    };
    encoder.value(message, 0)?;
    Ok(Cow::Owned(encoder.out))
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

struct Encoder {
    /// The JSON written so far.
    out: Vec<u8>,
    /// Arrays and objects being encoded, outermost first: meeting one again is recursion.
    path: Vec<*const ()>,
}

/// Where a JSON object's entries come from. json_encode hides the mangled names of protected and
/// private properties (they start with a NUL byte) in objects, but writes such keys of arrays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Array,
    Properties,
}

/// An entry's key as json_encode writes it in an object, borrowed from the key zval.
enum Key<'a> {
    Index(i64),
    Name(&'a [u8]),
}

impl Encoder {
    fn value(&mut self, z: &Zval, depth: usize) -> Result<(), Error> {
        let z = z.dereference();
        let z = z.indirect().unwrap_or(z).dereference();
        if z.is_null() {
            json::write_null(&mut self.out);
        } else if let Some(b) = z.bool() {
            json::write_bool(b, &mut self.out);
        } else if let Some(n) = z.long() {
            json::write_i64(n, &mut self.out);
        } else if let Some(f) = z.double() {
            json::write_f64(f, &mut self.out).map_err(|json::NonFiniteFloat| {
                Error::invalid("contains NAN or INF, which JSON cannot represent")
            })?;
        } else if let Some(s) = z.zend_str() {
            json::write_utf8(s.as_bytes(), &mut self.out).map_err(malformed_utf8)?;
        } else if let Some(array) = z.array() {
            self.nested(array as *const ZendHashTable as *const (), depth, |e| {
                e.array(array, depth)
            })?;
        } else if let Some(object) = z.object() {
            self.nested(object as *const ZendObject as *const (), depth, |e| {
                e.object(object, depth)
            })?;
        } else {
            return Err(Error::invalid_type(format!(
                "contains a {}, which cannot be encoded as JSON",
                type_name(z)
            )));
        }
        Ok(())
    }

    fn nested(
        &mut self,
        id: *const (),
        depth: usize,
        f: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<(), Error> {
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
    fn array(&mut self, array: &ZendHashTable, depth: usize) -> Result<(), Error> {
        if is_list(array) {
            self.list(array, depth)
        } else {
            self.map(array, Table::Array, depth)
        }
    }

    fn list(&mut self, array: &ZendHashTable, depth: usize) -> Result<(), Error> {
        json::begin_array(&mut self.out);
        for (i, (_, value)) in entries(array).enumerate() {
            if i > 0 {
                json::write_comma(&mut self.out);
            }
            self.value(value, depth + 1)?;
        }
        json::end_array(&mut self.out);
        Ok(())
    }

    fn map(&mut self, table: &ZendHashTable, kind: Table, depth: usize) -> Result<(), Error> {
        json::begin_object(&mut self.out);
        let mut first = true;
        for (key, value) in entries(table) {
            let Some(key) = object_key(&key, kind) else {
                continue;
            };
            if !first {
                json::write_comma(&mut self.out);
            }
            first = false;
            match key {
                Key::Index(index) => json::write_index_key(index, &mut self.out),
                Key::Name(name) => {
                    json::write_utf8_key(name, &mut self.out).map_err(malformed_utf8)?
                }
            }
            self.value(value, depth + 1)?;
        }
        json::end_object(&mut self.out);
        Ok(())
    }

    fn object(&mut self, object: &ZendObject, depth: usize) -> Result<(), Error> {
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

    /// An object's public properties as a JSON object (what json_encode does for plain objects).
    fn public_properties(&mut self, object: &ZendObject, depth: usize) -> Result<(), Error> {
        let properties = object
            .get_properties()
            .map_err(|_| Error::invalid("contains an object whose properties cannot be read"))?;
        self.map(properties, Table::Properties, depth)
    }
}

/// Whether json_encode writes `array` as a JSON array: its keys are 0..n-1 in order. Stops at
/// the first key that is not, which for maps is usually the first one.
fn is_list(array: &ZendHashTable) -> bool {
    entries(array)
        .enumerate()
        .all(|(i, (key, _))| key.long() == i64::try_from(i).ok())
}

/// The entries of a hash table in order, without the slots that json_encode skips: those of
/// declared properties that were unset (an INDIRECT pointing to UNDEF). Nothing is collected.
fn entries(table: &ZendHashTable) -> impl Iterator<Item = (Zval, &Zval)> {
    let mut iter = table.iter();
    std::iter::from_fn(move || loop {
        let (key, value) = iter.next_zval()?;
        let value_is_unset = value
            .indirect()
            .is_some_and(|v| v.get_type() == DataType::Undef);
        if !value_is_unset {
            return Some((key, value));
        }
    })
}

/// How an entry's key is written in a JSON object, or `None` for an entry json_encode leaves out
/// (a mangled property name).
fn object_key(key: &Zval, table: Table) -> Option<Key<'_>> {
    if let Some(index) = key.long() {
        return Some(Key::Index(index));
    }
    let name = key.zend_str()?.as_bytes();
    let mangled = name.first() == Some(&0);
    (table == Table::Array || !mangled).then_some(Key::Name(name))
}

fn malformed_utf8(e: json::MalformedUtf8) -> Error {
    Error::invalid(format!(
        "contains malformed UTF-8 (at byte {}), which JSON cannot represent",
        e.valid_up_to
    ))
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
