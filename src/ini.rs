//! The `qrpush.*` php.ini directives: registered from the core's settings table at module
//! startup (so a new setting needs no change here), validated there with a warning per bad
//! value, and read into a `Config` when a client needs one.
//!
//! They are PHP_INI_PERDIR: a value can differ per php-fpm pool (`php_admin_value`), per nginx
//! location (`fastcgi_param PHP_ADMIN_VALUE`), per Apache vhost or directory, and per
//! `.user.ini`, so one process sees several configurations over its requests. What is built from
//! a configuration is therefore keyed by the [`Values`] it came from ([`Recent`]).

use std::ffi::CString;

use ext_php_rs::error::php_error;
use ext_php_rs::flags::{ErrorType, IniEntryPermission};
use ext_php_rs::zend::{ExecutorGlobals, IniEntryDef};
use once_cell::sync::{Lazy, OnceCell};
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
    let values = Values::current();
    let (_, warnings) = Config::from_lenient(values.pairs());
    for w in warnings {
        php_error(&ErrorType::CoreWarning, &warning_text(&w));
    }
    let _ = AT_STARTUP.set(values);
}

/// The values of module startup (php.ini, `-d`): their invalid ones were warned about then.
static AT_STARTUP: OnceCell<Values> = OnceCell::new();

/// The configuration in effect now, invalid values replaced by defaults.
///
/// Parsed once per distinct set of values: `new QrPush\Client()` per request would otherwise
/// render and parse every directive on every request (~40,000 instructions, most of a
/// construction). An invalid value that differs from php.ini's (a per-directory one) is warned
/// about (E_WARNING) the first time this process meets it, as php.ini's were at startup.
pub fn config() -> Config {
    static PARSED: Lazy<Mutex<Recent<Config>>> = Lazy::new(Default::default);
    if let Some(config) = with_raw_values(|raw| PARSED.lock().get(raw)) {
        return config;
    }
    let values = Values::current();
    let (config, warnings) = Config::from_lenient(values.pairs());
    PARSED.lock().insert(values.clone(), config.clone());
    // After the lock is released: a warning can run a user error handler, which can call back.
    for w in warnings.iter().filter(|w| values.differs_from_startup(w)) {
        php_error(&ErrorType::Warning, &warning_text(w));
    }
    config
}

/// The `qrpush.*` values in effect, as PHP holds them, in `SETTINGS` order (`None`: no value).
/// Equal values give equal configurations.
#[derive(Clone, PartialEq, Eq)]
pub struct Values(Vec<Option<Box<[u8]>>>);

impl Values {
    /// A copy of the values now.
    pub fn current() -> Self {
        with_raw_values(|raw| Values(raw.iter().map(|v| v.map(Box::from)).collect()))
    }

    /// Whether these are `raw`, values as [`with_raw_values`] lends them.
    fn are(&self, raw: &[Option<&[u8]>]) -> bool {
        self.0.iter().map(Option::as_deref).eq(raw.iter().copied())
    }

    /// (setting, value) for every directive that has a value.
    fn pairs(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        SETTINGS.iter().zip(&self.0).filter_map(|(s, value)| {
            Some((
                s.name,
                String::from_utf8_lossy(value.as_deref()?).into_owned(),
            ))
        })
    }

    /// Whether the setting `warning` is about has another value here than at module startup.
    fn differs_from_startup(&self, warning: &Error) -> bool {
        let Some(Subject::Setting(name)) = warning.subject() else {
            return true;
        };
        let Some(index) = SETTINGS.iter().position(|s| s.name == name) else {
            return true;
        };
        AT_STARTUP.get().map(|v| &v.0[index]) != Some(&self.0[index])
    }
}

/// What was built from the last few configurations met, most recently used first, keyed by their
/// [`Values`]. Bounded: a process that meets more configurations than this in turn (a worker
/// serving many vhosts) rebuilds the least recently used, which costs one parse.
pub struct Recent<T> {
    entries: Vec<(Values, T)>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent {
            entries: Vec::new(),
        }
    }
}

impl<T: Clone> Recent<T> {
    /// How many configurations are kept.
    pub const CAPACITY: usize = 16;

    /// What was built from the values `raw` (see [`with_raw_values`]), if it is still kept; it
    /// becomes the most recent. Compares in place: nothing is copied.
    pub fn get(&mut self, raw: &[Option<&[u8]>]) -> Option<T> {
        let at = self.entries.iter().position(|(v, _)| v.are(raw))?;
        if at > 0 {
            let entry = self.entries.remove(at);
            self.entries.insert(0, entry);
        }
        Some(self.entries[0].1.clone())
    }

    /// Keeps `built` for `values` (replacing what was kept for them), dropping the least recently
    /// used beyond [`Self::CAPACITY`].
    pub fn insert(&mut self, values: Values, built: T) {
        self.entries.retain(|(v, _)| *v != values);
        self.entries.insert(0, (values, built));
        self.entries.truncate(Self::CAPACITY);
    }
}

/// `qrpush.<setting>: <what is wrong>; using the default '<default>'`.
fn warning_text(e: &Error) -> String {
    let default = match e.subject() {
        Some(Subject::Setting(name)) => config::setting(name).map_or("", |s| s.default),
        _ => "",
    };
    format!("qrpush.{}; using the default '{default}'", e.message())
}

/// Lends `f` every setting's current value as PHP holds it, in `SETTINGS` order, without copying.
pub fn with_raw_values<R>(f: impl FnOnce(&[Option<&[u8]>]) -> R) -> R {
    // "qrpush.<name>" for every setting, built once.
    static KEYS: Lazy<Vec<String>> = Lazy::new(|| {
        SETTINGS
            .iter()
            .map(|s| format!("qrpush.{}", s.name))
            .collect()
    });
    let globals = ExecutorGlobals::get();
    // SAFETY: EG(ini_directives) is the engine's table of registered directives; it outlives this
    // call, and `f` runs no PHP code (the values are only copied or compared).
    let Some(table) = (unsafe { globals.ini_directives.as_ref() }) else {
        return f(&[None; SETTINGS.len()]);
    };
    let raw: Vec<Option<&[u8]>> = KEYS
        .iter()
        .map(|key| {
            let entry = table.get(key.as_str())?;
            // SAFETY: INI entries are stored as pointers to zend_ini_entry, owned by the table.
            let entry = unsafe { entry.ptr::<ext_php_rs::ffi::zend_ini_entry>()?.as_ref()? };
            // SAFETY: a non-null value is a valid zend_string owned by the entry.
            let value = unsafe { entry.value.as_ref()? };
            Some(value.as_bytes())
        })
        .collect();
    let result = f(&raw);
    drop(raw);
    drop(globals);
    result
}

fn cstring(s: &str) -> CString {
    CString::new(s).expect("setting names and defaults contain no NUL")
}
