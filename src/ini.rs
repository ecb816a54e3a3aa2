//! The `qrpush.*` php.ini directives: registered from the core's settings table at module
//! startup (so a new setting needs no change here), validated there with a warning per bad
//! value, and read into a `Config` when a client is first needed in a process.

use std::ffi::CString;

use ext_php_rs::error::php_error;
use ext_php_rs::flags::{ErrorType, IniEntryPermission};
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef};
use qrpush_core::{Config, Error, SETTINGS};

/// Registers one INI entry per core setting. The table must live as long as the process, like a
/// C extension's static `zend_ini_entry_def[]`; it is built once and leaked on purpose.
pub fn register(module_number: i32) {
    let mut defs: Vec<IniEntryDef> = SETTINGS
        .iter()
        .map(|s| {
            let name: &'static std::ffi::CStr =
                Box::leak(cstring(&format!("qrpush.{}", s.name)).into_boxed_c_str());
            let default: &'static std::ffi::CStr = Box::leak(cstring(s.default).into_boxed_c_str());
            // PHP_INI_SYSTEM | PERDIR: php.ini, -d, and php-fpm's php_admin_value; not ini_set(),
            // because the pool of a process must not change endpoint mid-flight.
            IniEntryDef::new(name, default, IniEntryPermission::PerDir)
        })
        .collect();
    defs.push(IniEntryDef::end());
    let defs: &'static [IniEntryDef] = Box::leak(defs.into_boxed_slice());
    // Kept reachable from a static, as a C extension's table is: valgrind then counts it as
    // still reachable, not as lost (tests/leaks found it "definitely lost").
    INI_TABLE.store(defs.as_ptr() as usize, std::sync::atomic::Ordering::Relaxed);
    IniEntryDef::register(defs, module_number);
}

/// The address of the registered INI table (see `register`). `#[used]`: otherwise the optimiser
/// drops a static that is only ever written, and the table is unreachable again.
#[used]
static INI_TABLE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Warns once at startup about every invalid directive (the default is used instead).
pub fn warn_invalid() {
    let (_, warnings) = Config::from_lenient(current_values());
    for w in warnings {
        php_error(&ErrorType::CoreWarning, &warning_text(&w));
    }
}

/// The configuration php.ini gives, invalid values replaced by defaults.
pub fn config() -> Config {
    Config::from_lenient(current_values()).0
}

fn warning_text(e: &Error) -> String {
    let name = e.message().split(':').next().unwrap_or("");
    let default = SETTINGS
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.default)
        .unwrap_or("");
    format!(
        "qrpush.{}; using the default '{}'",
        e.message(),
        if name == "url" {
            "redis://127.0.0.1:6379"
        } else {
            default
        }
    )
}

/// (setting, value) for every directive that has a value now.
pub fn current_values() -> Vec<(&'static str, String)> {
    let globals = ExecutorGlobals::get();
    let Some(table) = (unsafe { globals.ini_directives.as_ref() }) else {
        return Vec::new();
    };
    SETTINGS
        .iter()
        .filter_map(|s| {
            let entry = table.get(format!("qrpush.{}", s.name).as_str())?;
            // SAFETY: INI entries are stored as pointers to zend_ini_entry, owned by the table.
            let entry = unsafe { entry.ptr::<ext_php_rs::ffi::zend_ini_entry>()?.as_ref()? };
            // SAFETY: a non-null value is a valid zend_string owned by the entry.
            let value = unsafe { entry.value.as_ref()? };
            Some((
                s.name,
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ))
        })
        .collect()
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("setting names and defaults contain no NUL")
}
