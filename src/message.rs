//! Converts a PHP `$message` into the bytes to publish: strings as they are, arrays and the
//! supported objects encoded to JSON exactly like PHP's `json_encode` with
//! JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION, floats spelled
//! with the current `serialize_precision`.
//!
//! The encoding is one pass from the zvals into one buffer: this file only walks PHP values and
//! decides what they are; the core's `json` writer spells them (escaping, floats). It stops as
//! soon as the output is larger than `qrpush.max_payload`, so an oversized value costs no more
//! memory than the limit.
//!
//! User code can run in the middle of an encoding (`jsonSerialize()`), and it can reassign or
//! unset what the message is made of: through PHP references, or with `unset($parent->child)`
//! on the object being encoded. The encoder does what json_encode does about it: it holds a
//! counted reference to every array and object while it encodes it, reads an object's properties
//! through `zend_get_properties_for` (which holds the table), and detects recursion with the
//! engine's own flags. A fatal error inside `jsonSerialize()` is caught, so that the call releases
//! all of it before the error ends the request (`engine`).
//!
//! Everything that json_encode would reject (invalid UTF-8, NAN/INF, recursion, too deep) and
//! what it would encode surprisingly (closures as `{}`, resources) is refused here, before
//! anything is sent: on an error the partly written buffer is dropped.

use ext_php_rs::ffi::ext_php_rs_process_globals;
use ext_php_rs::flags::DataType;
use ext_php_rs::types::Zval;
use ext_php_rs::zend::{ClassEntry, ExecutorGlobals};
use once_cell::sync::OnceCell;
use qrpush_core::json::{self, Precision};
use qrpush_core::Error;

use crate::engine::{
    self, Fatal, Held, HeldString, Object, PropertyTable, Protected, RecursionGuard, Table,
};

/// json_encode's default depth limit.
const MAX_DEPTH: usize = 512;

/// Enough for a typical event (a few hundred bytes) without growing the buffer.
const INITIAL_CAPACITY: usize = 512;

/// The bytes of a message, ready to publish.
pub enum Payload<'a> {
    /// A string borrowed from the caller's argument: used only when no user code can run before
    /// it is sent (a single publish of a string).
    Borrowed(&'a [u8]),
    /// A string kept alive by a counted reference.
    Held(HeldString),
    /// The JSON encoding of an array or object.
    Json(Vec<u8>),
}

impl AsRef<[u8]> for Payload<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Payload::Borrowed(bytes) => bytes,
            Payload::Held(string) => string.as_ref(),
            Payload::Json(json) => json,
        }
    }
}

/// The bytes of `message`, the argument of a single publish: a string as it is (borrowed: no user
/// code runs before it is sent), or freshly encoded JSON of at most `max_payload` bytes.
pub fn to_payload(message: &Zval, max_payload: usize) -> Result<Payload<'_>, Error> {
    let message = message.dereference();
    if let Some(s) = message.zend_str() {
        return Ok(Payload::Borrowed(s.as_bytes()));
    }
    encode(message, max_payload).map(Payload::Json)
}

/// The bytes of `message`, a value the caller holds (a counted reference) because user code may
/// run before it is sent (a batch): a string keeps being held, anything else is encoded as
/// [`to_payload`] does.
pub fn to_held_payload(message: Zval, max_payload: usize) -> Result<Payload<'static>, Error> {
    match HeldString::take(message) {
        Ok(string) => Ok(Payload::Held(string)),
        Err(message) => encode(&message, max_payload).map(Payload::Json),
    }
}

fn encode(message: &Zval, max_payload: usize) -> Result<Vec<u8>, Error> {
    if !(message.is_array() || message.is_object()) {
        return Err(Error::invalid_type(format!(
            "must be of type string|array|object, {} given",
            type_name(message)
        )));
    }
    let mut encoder = Encoder {
        out: Vec::with_capacity(INITIAL_CAPACITY.min(max_payload.saturating_add(1))),
        max_payload,
        precision: serialize_precision(),
    };
    encoder.value(message, 0)?;
    Ok(encoder.out)
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

/// `serialize_precision` as json_encode reads it (PG(serialize_precision)).
fn serialize_precision() -> Precision {
    // SAFETY: the process (core) globals of this thread exist for as long as PHP runs; the one
    // field is copied out.
    Precision::from_ini(unsafe { (*ext_php_rs_process_globals()).serialize_precision })
}

struct Encoder {
    /// The JSON written so far.
    out: Vec<u8>,
    /// `qrpush.max_payload`: the encoding stops as soon as `out` would be longer.
    max_payload: usize,
    /// How floats are spelled; read again after user code ran (it may have changed it).
    precision: Precision,
}

/// Where a JSON object's entries come from. json_encode hides the mangled names of protected and
/// private properties (they start with a NUL byte) in objects, but writes such keys of arrays.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
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
            json::write_f64_with(f, self.precision, &mut self.out).map_err(
                |json::NonFiniteFloat| {
                    Error::invalid("contains NAN or INF, which JSON cannot represent")
                },
            )?;
        } else if let Some(s) = z.zend_str() {
            let s = s.as_bytes();
            // The quoted, escaped string is at least 2 bytes longer than the raw one.
            self.make_room(s.len().saturating_add(2))?;
            json::write_utf8(s, &mut self.out).map_err(malformed_utf8)?;
        } else if z.is_array() || z.is_object() {
            if depth >= MAX_DEPTH {
                return Err(Error::invalid(format!(
                    "is nested deeper than {MAX_DEPTH} levels"
                )));
            }
            // What json_encode does (ZVAL_COPY): user code run while this value is encoded may
            // drop every other reference to it (a reassigned PHP reference, an unset property),
            // and the value must outlive its own encoding.
            let Some(holder) = Held::new(z) else {
                unreachable!("checked to be an array or an object")
            };
            let held = holder.zval();
            match (Table::of_array(held), Object::of(held)) {
                (Some(array), _) => self.array(array, depth)?,
                (None, Some(object)) => self.object(held, object, depth)?,
                (None, None) => unreachable!("checked to be an array or an object"),
            }
        } else {
            return Err(Error::invalid_type(format!(
                "contains a {}, which cannot be encoded as JSON",
                type_name(z)
            )));
        }
        Ok(())
    }

    /// Fails once `needed` more bytes would take the output past `max_payload`.
    fn make_room(&self, needed: usize) -> Result<(), Error> {
        if self.out.len().saturating_add(needed) > self.max_payload {
            return Err(Error::invalid(format!(
                "is more than qrpush.max_payload ({} bytes) once encoded as JSON",
                self.max_payload
            )));
        }
        Ok(())
    }

    /// A list (keys 0..n-1 in order) becomes a JSON array, anything else an object.
    fn array(&mut self, array: Table, depth: usize) -> Result<(), Error> {
        let Some(_protected) = Protected::new(array) else {
            return Err(recursion());
        };
        if is_list(array) {
            self.list(array, depth)
        } else {
            self.map(array, Kind::Array, depth)
        }
    }

    fn list(&mut self, array: Table, depth: usize) -> Result<(), Error> {
        json::begin_array(&mut self.out);
        for (i, (_, value)) in entries(array).enumerate() {
            if i > 0 {
                json::write_comma(&mut self.out);
            }
            self.value(value, depth + 1)?;
            self.make_room(0)?;
        }
        json::end_array(&mut self.out);
        Ok(())
    }

    fn map(&mut self, table: Table, kind: Kind, depth: usize) -> Result<(), Error> {
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
                    self.make_room(name.len().saturating_add(3))?;
                    json::write_utf8_key(name, &mut self.out).map_err(malformed_utf8)?
                }
            }
            self.value(value, depth + 1)?;
            self.make_room(0)?;
        }
        json::end_object(&mut self.out);
        Ok(())
    }

    /// `held` holds `object` (a counted reference taken by `value`).
    fn object(&mut self, held: &Zval, object: Object, depth: usize) -> Result<(), Error> {
        let ce = object.class();
        if let Some(json_serializable) = class("JsonSerializable") {
            if ce.instance_of(json_serializable) {
                return self.serializable(held, object, depth);
            }
        }
        if let Some(backed_enum) = class("BackedEnum") {
            if ce.instance_of(backed_enum) {
                // SAFETY: only enums can implement BackedEnum.
                let value = unsafe { object.backed_enum_value() };
                return self.value(value, depth);
            }
        }
        if std::ptr::eq(ce, ext_php_rs::zend::ce::stdclass()) {
            return self.public_properties(held, depth);
        }
        Err(Error::invalid_type(format!(
            "contains an object of class {}; only \\stdClass, \\JsonSerializable and \\BackedEnum objects can be published",
            object.class_name()
        )))
    }

    /// What `jsonSerialize()` returns, encoded: the method runs with the object held and its JSON
    /// recursion guard set, as under json_encode.
    fn serializable(&mut self, held: &Zval, object: Object, depth: usize) -> Result<(), Error> {
        let Some(guard) = RecursionGuard::enter(object) else {
            return Err(recursion());
        };
        let result = engine::catch_fatal(|| object.call("jsonSerialize"))
            .map_err(fatal)?
            .ok_or_else(|| {
                Error::invalid(format!(
                    "could not be encoded: {}::jsonSerialize() failed",
                    object.class_name()
                ))
            })?;
        // An exception thrown by jsonSerialize() stays pending and reaches the caller as is: the
        // error made here is never shown (an exception that is already pending is not replaced).
        if ExecutorGlobals::has_exception() {
            return Err(Error::invalid(format!(
                "could not be encoded: {}::jsonSerialize() threw",
                object.class_name()
            )));
        }
        // User code may have changed serialize_precision: json_encode reads it for every float.
        self.precision = serialize_precision();
        // Like json_encode: returning $this means "my public properties", and the call itself is
        // not a nesting level.
        if Object::of(&result).is_some_and(|same| same.is(object)) {
            drop(guard);
            return self.public_properties(held, depth);
        }
        let encoded = self.value(&result, depth);
        drop(guard);
        encoded
    }

    /// An object's public properties as a JSON object (what json_encode does for plain objects),
    /// read from the table `zend_get_properties_for` lends, which is held meanwhile.
    fn public_properties(&mut self, held: &Zval, depth: usize) -> Result<(), Error> {
        let properties = engine::catch_fatal(|| PropertyTable::of(held))
            .map_err(fatal)?
            .ok_or_else(|| Error::invalid("contains an object whose properties cannot be read"))?;
        let Some(_protected) = Protected::new(properties.table()) else {
            return Err(recursion());
        };
        self.map(properties.table(), Kind::Properties, depth)
    }
}

/// Whether json_encode writes `array` as a JSON array: its keys are 0..n-1 in order. Stops at
/// the first key that is not, which for maps is usually the first one.
fn is_list(array: Table) -> bool {
    entries(array)
        .enumerate()
        .all(|(i, (key, _))| key.long() == i64::try_from(i).ok())
}

/// The entries of a hash table in order, without the slots that json_encode skips: those of
/// declared properties that were unset (an INDIRECT pointing to UNDEF). Nothing is collected.
/// The caller holds the table for as long as it iterates.
fn entries<'a>(table: Table) -> impl Iterator<Item = (Zval, &'a Zval)> {
    // SAFETY: every caller holds the table (a counted reference) while it iterates.
    let mut iter = unsafe { table.entries() }.iter();
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
fn object_key(key: &Zval, kind: Kind) -> Option<Key<'_>> {
    if let Some(index) = key.long() {
        return Some(Key::Index(index));
    }
    let name = key.zend_str()?.as_bytes();
    let mangled = name.first() == Some(&0);
    (kind == Kind::Array || !mangled).then_some(Key::Name(name))
}

fn recursion() -> Error {
    Error::invalid("contains a recursive reference, which JSON cannot represent")
}

/// The error that unwinds the call after a fatal error in user code; never shown, since the call
/// resumes the fatal error instead (`engine::resume_fatal`).
fn fatal(_: Fatal) -> Error {
    Error::invalid("could not be encoded: a fatal error ended jsonSerialize()")
}

fn malformed_utf8(e: json::MalformedUtf8) -> Error {
    Error::invalid(format!(
        "contains malformed UTF-8 (at byte {}), which JSON cannot represent",
        e.valid_up_to
    ))
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
