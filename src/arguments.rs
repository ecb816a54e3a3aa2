//! PHP arguments read into owned Rust values, with errors about the subject they hold: text that
//! must be UTF-8, and the "a string or a list of strings" arguments (a broadcast's channels, a
//! Socket.IO emit's rooms). Everything is copied: nothing borrowed from PHP outlives the read.

use ext_php_rs::types::Zval;
use qrpush_core::{Error, Subject};

use crate::message::type_name;

/// `bytes` as text, or a `\ValueError` about `subject`.
pub fn utf8(bytes: &[u8], subject: Subject) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::invalid(format!(
            "must be valid UTF-8 (malformed at byte {})",
            e.valid_up_to()
        ))
        .about(subject)
    })
}

/// The strings `value` holds: one string (about `one`), or an array's values in order, each a
/// string (about `at(index)`; the keys do not matter). The flag says which it was.
pub fn strings(
    value: &Zval,
    one: Subject,
    at: fn(usize) -> Subject,
) -> Result<(Vec<Vec<u8>>, bool), Error> {
    let value = value.dereference();
    if let Some(text) = value.zend_str() {
        return Ok((vec![text.as_bytes().to_vec()], true));
    }
    let Some(list) = value.array() else {
        return Err(Error::invalid_type(format!(
            "must be of type string|array, {} given",
            type_name(value)
        ))
        .about(one));
    };
    let items = list
        .values()
        .enumerate()
        .map(|(index, item)| match item.dereference().zend_str() {
            Some(text) => Ok(text.as_bytes().to_vec()),
            None => Err(Error::invalid_type(format!(
                "must be of type string, {} given",
                type_name(item)
            ))
            .about(at(index))),
        })
        .collect::<Result<_, _>>()?;
    Ok((items, false))
}
