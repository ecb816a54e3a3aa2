//! The `qrpush.*` php.ini directives: registered from the core's settings table at module
//! startup (so a new setting needs no change here), validated there with a warning per bad
//! value, and read into a `Config` when a client is first needed in a process.

use std::ffi::CString;

use ext_php_rs::error::php_error;
use ext_php_rs::flags::{ErrorType, IniEntryPermission};
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use qrpush_core::{config, Config, Error, Subject, SETTINGS};

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
    // Kept reachable from a static, as a C extension's table is, so that valgrind counts it as
    // still reachable rather than "definitely lost".
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
///
/// Parsed again only when a directive's value changed since the last call (they can differ per
/// directory, PHP_INI_PERDIR): `new QrPush\Client()` per request would otherwise render and parse
/// every directive on every request (~40,000 instructions, most of a construction).
pub fn config() -> Config {
    /// The raw values last parsed, and what they gave.
    type Parsed = (Vec<Option<Vec<u8>>>, Config);
    static LAST: Mutex<Option<Parsed>> = Mutex::new(None);
    let raw = raw_values();
    let mut last = LAST.lock();
    if let Some((seen, config)) = last.as_ref() {
        if seen.iter().map(Option::as_deref).eq(raw.iter().copied()) {
            return config.clone();
        }
    }
    let config = Config::from_lenient(current_values()).0;
    let seen = raw.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
    *last = Some((seen, config.clone()));
    config
}

/// `qrpush.<setting>: <what is wrong>; using the default '<default>'`.
fn warning_text(e: &Error) -> String {
    let default = match e.subject() {
        Some(Subject::Setting(name)) => config::setting(name).map_or("", |s| s.default),
        _ => "",
    };
    format!("qrpush.{}; using the default '{default}'", e.message())
}

/// (setting, value) for every directive that has a value now.
pub fn current_values() -> Vec<(&'static str, String)> {
    SETTINGS
        .iter()
        .zip(raw_values())
        .filter_map(|(s, value)| Some((s.name, String::from_utf8_lossy(value?).into_owned())))
        .collect()
}

/// Every setting's current value as PHP holds it, in `SETTINGS` order, without copying.
fn raw_values<'a>() -> Vec<Option<&'a [u8]>> {
    // "qrpush.<name>" for every setting, built once.
    static KEYS: Lazy<Vec<String>> = Lazy::new(|| {
        SETTINGS
            .iter()
            .map(|s| format!("qrpush.{}", s.name))
            .collect()
    });
    let globals = ExecutorGlobals::get();
    // SAFETY: EG(ini_directives) is the engine's table of registered directives; it outlives the
    // call that reads it (the values are only copied or compared before the call returns).
    let Some(table) = (unsafe { globals.ini_directives.as_ref() }) else {
        return vec![None; SETTINGS.len()];
    };
    KEYS.iter()
        .map(|key| {
            let entry = table.get(key.as_str())?;
            // SAFETY: INI entries are stored as pointers to zend_ini_entry, owned by the table.
            let entry = unsafe { entry.ptr::<ext_php_rs::ffi::zend_ini_entry>()?.as_ref()? };
            // SAFETY: a non-null value is a valid zend_string owned by the entry.
            let value = unsafe { entry.value.as_ref()? };
            Some(value.as_bytes())
        })
        .collect()
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("setting names and defaults contain no NUL")
}
