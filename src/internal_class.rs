//! Finds PHP's own classes (RuntimeException, JsonSerializable, BackedEnum) by name.
//!
//! `ClassEntry::try_find` goes through the executor's class table, which does not exist yet
//! during module startup, when our exception classes must name their parent. The compiler
//! globals' table holds the same internal classes from engine startup on.

use ext_php_rs::types::ZendHashTable;
use ext_php_rs::zend::ClassEntry;

/// The internal class `lowercase_name` (class tables are keyed by the lower-cased name).
pub fn find(lowercase_name: &str) -> Option<&'static ClassEntry> {
    // SAFETY: the compiler globals of this thread exist from engine startup to shutdown, and
    // CG(class_table) is created at engine startup and lives until shutdown.
    let table: &ZendHashTable = unsafe {
        ext_php_rs::ffi::ext_php_rs_compiler_globals()
            .as_ref()?
            .class_table
            .as_ref()?
    };
    let entry = table.get(lowercase_name)?;
    // SAFETY: class table values are pointers to class entries; internal classes are never
    // freed before engine shutdown.
    unsafe { entry.ptr::<ClassEntry>()?.as_ref() }
}
