//! What the binding needs from the Zend engine beyond ext-php-rs, for walking PHP values while
//! user code may run (a `jsonSerialize()` method): the same protections `json_encode` takes.
//!
//! - [`Fatal`] and [`catch_fatal`]: a fatal error (memory_limit, max_execution_time,
//!   `E_USER_ERROR`) inside user code is a bailout, a `longjmp` that would skip every Rust frame
//!   of the call and leak what they own (buffers, counted references, a client). It is caught
//!   where user code is entered, the call unwinds normally, and [`resume_fatal`] resumes the
//!   bailout once nothing is held any more.
//! - [`HeldString`] and [`Held`]: a string, array or object kept alive by a counted reference,
//!   taken and released inline, as json_encode takes and releases its own.
//! - [`Table`] and [`Object`]: arrays and objects are handled through raw pointers, never as
//!   `&ZendHashTable` / `&ZendObject` arguments: the engine changes them while the encoder walks
//!   them (reference counts, recursion flags, properties assigned by user code), which a Rust
//!   shared reference promises cannot happen.
//! - [`Protected`]: `GC_TRY_PROTECT_RECURSION` on an array or a property table being encoded,
//!   so meeting it again is recursion, without a list of visited values.
//! - [`RecursionGuard`]: the object's JSON recursion flag around `jsonSerialize()`, the very
//!   flag `json_encode` uses, so the two see each other's recursion.
//! - [`PropertyTable`]: an object's properties as `json_encode` reads them
//!   (`zend_get_properties_for(JSON)`), holding a counted reference to the table.

use std::cell::Cell;
use std::ffi::c_char;
use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::ptr::{self, addr_of_mut};

use ext_php_rs::ffi::{
    _zend_prop_purpose_ZEND_PROP_PURPOSE_JSON, ext_php_rs_zend_string_release, zend_array,
    zend_array_destroy, zend_call_known_function, zend_function, zend_hash_str_find_ptr_lc,
    zend_object, zend_string, ZEND_ACC_USE_GUARDS, ZEND_MODULE_API_NO,
};
use ext_php_rs::types::{ZendHashTable, Zval};
use ext_php_rs::zend::{try_catch, ClassEntry};
/// `GC_PROTECTED`: the recursion flag of arrays and objects.
const GC_PROTECTED: u32 = 1 << 5;
/// `GC_IMMUTABLE`: shared, read-only (interned strings, literal arrays): never flagged.
const GC_IMMUTABLE: u32 = 1 << 6;
/// `ZEND_GUARD_RECURSION_JSON`: the object is inside its own `jsonSerialize()`. PHP 8.4 added a
/// property-hook bit below it; before 8.3 the guard word held property guards only (0: unused).
const GUARD_RECURSION_JSON: u32 = if ZEND_MODULE_API_NO >= 20240924 {
    1 << 7
} else if ZEND_MODULE_API_NO >= 20230831 {
    1 << 6
} else {
    0
};

thread_local! {
    /// Set when [`catch_fatal`] caught a bailout that [`resume_fatal`] has not resumed yet.
    static FATAL_PENDING: Cell<bool> = const { Cell::new(false) };
}

/// A fatal error was raised inside user code: the engine already reported it and must now end
/// the request. The call releases what it holds and then calls [`resume_fatal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fatal;

/// Runs `f`, which enters the engine (user code, or an allocation that can exhaust
/// memory_limit), catching a bailout instead of letting it skip the caller's frames.
pub fn catch_fatal<R>(f: impl FnOnce() -> R) -> Result<R, Fatal> {
    match try_catch(AssertUnwindSafe(f)) {
        Ok(r) => Ok(r),
        Err(ext_php_rs::zend::CatchError::Bailout) => {
            FATAL_PENDING.with(|p| p.set(true));
            Err(Fatal)
        }
        // `f` only calls the engine, which does not panic; were it to, the call still fails and
        // unwinds normally, with nothing to resume.
        Err(_) => Err(Fatal),
    }
}

/// Whether [`catch_fatal`] caught a bailout that [`resume_fatal`] must resume.
pub fn fatal_pending() -> bool {
    FATAL_PENDING.with(Cell::get)
}

/// Resumes the bailout [`catch_fatal`] caught. Called at the end of a PHP method, once
/// everything the call owned has been dropped: the bailout then skips only frames that own
/// nothing, up to the handler frame of the method (ext-php-rs's `run_handler`), which passes it
/// on to the engine.
pub fn resume_fatal() -> ! {
    FATAL_PENDING.with(|p| p.set(false));
    // SAFETY: see above; the engine ends the request as for any fatal error.
    unsafe { ext_php_rs::zend::bailout() }
}

/// Forgets a caught bailout that was never resumed (there is none unless a call forgot to
/// [`resume_fatal`]); called at request startup.
pub fn reset() {
    FATAL_PENDING.with(|p| p.set(false));
}

/// A PHP string kept alive by a counted reference (`zend_string_copy`, what `ZVAL_COPY` and
/// json_encode do): its bytes stay valid whatever user code does meanwhile to the variable it came
/// from.
///
/// A counted reference rather than a copy: it costs one increment and one decrement whatever the
/// string's length (nothing at all for interned strings), where a copy costs an allocation and a
/// memcpy per string; a batch of 100 messages of 1 KB would copy 100 KB. Both are done inline: the
/// engine is called only to free a string this was the last holder of.
pub struct HeldString(*mut zend_string);

impl HeldString {
    /// Holds the string in `value` (after dereferencing), or `None` if it is no string.
    pub fn new(value: &Zval) -> Option<Self> {
        let value = value.dereference();
        if !value.is_string() {
            return None;
        }
        // SAFETY: `str_` is the live member of the value union for strings; the string is alive
        // (the zval holds it) and its header is only touched through the raw pointer.
        unsafe {
            let string = value.value.str_;
            let info = addr_of_mut!((*string).gc.u.type_info).read();
            if info & GC_IMMUTABLE == 0 {
                let refcount = addr_of_mut!((*string).gc.refcount);
                refcount.write(refcount.read() + 1);
            }
            Some(HeldString(string))
        }
    }

    /// Takes over the reference `value` holds to its string, or gives `value` back if it holds
    /// no string.
    pub fn take(value: Zval) -> Result<Self, Zval> {
        if !value.is_string() {
            return Err(value);
        }
        // SAFETY: as in `new`; the zval's reference is moved here, so the zval must not release it.
        let string = unsafe { value.value.str_ };
        std::mem::forget(value);
        Ok(HeldString(string))
    }
}

impl AsRef<[u8]> for HeldString {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the string is alive while held; a zend_string's `len` bytes follow its header.
        unsafe {
            std::slice::from_raw_parts(
                addr_of_mut!((*self.0).val).cast::<u8>(),
                addr_of_mut!((*self.0).len).read(),
            )
        }
    }
}

impl Drop for HeldString {
    fn drop(&mut self) {
        // SAFETY: this holds a reference (or the string is interned, and never freed).
        unsafe {
            if addr_of_mut!((*self.0).gc.u.type_info).read() & GC_IMMUTABLE != 0 {
                return;
            }
            let refcount = addr_of_mut!((*self.0).gc.refcount);
            match refcount.read() {
                // The last holder: the engine frees it (request or persistent memory).
                1 => ext_php_rs_zend_string_release(self.0),
                n => refcount.write(n - 1),
            }
        }
    }
}

/// A counted reference to the array or object in a zval, taken as json_encode takes it
/// (`ZVAL_COPY`) and released as it releases it (`zval_ptr_dtor_nogc`): inline, and without
/// offering the value to the cycle collector as a possible garbage root, which is for references
/// a script drops, not for one held for the length of a call.
pub struct Held(ManuallyDrop<Zval>);

impl Held {
    /// Holds the array or object in `value` (not dereferenced), or `None` for other types.
    pub fn new(value: &Zval) -> Option<Self> {
        if !(value.is_array() || value.is_object()) {
            return None;
        }
        let mut held = Zval::new();
        // SAFETY: a bitwise copy of an array or object zval plus one on the reference count of
        // what it points to (immutable arrays are not counted), exactly ZVAL_COPY.
        unsafe {
            held.u1 = value.u1;
            held.value = value.value;
            if is_refcounted(&held) {
                let refcount = addr_of_mut!((*held.value.counted).gc.refcount);
                refcount.write(refcount.read() + 1);
            }
        }
        Some(Held(ManuallyDrop::new(held)))
    }

    /// The zval holding the value.
    pub fn zval(&self) -> &Zval {
        &self.0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: this holds one reference (or none, for an immutable array).
        unsafe {
            if !is_refcounted(&self.0) {
                return;
            }
            let refcount = addr_of_mut!((*self.0.value.counted).gc.refcount);
            match refcount.read() {
                // The last holder: the engine destroys the value (zval_ptr_dtor).
                1 => ManuallyDrop::drop(&mut self.0),
                n => refcount.write(n - 1),
            }
        }
    }
}

/// Whether the zval's value has a reference count (`Z_REFCOUNTED`: IS_TYPE_REFCOUNTED).
fn is_refcounted(value: &Zval) -> bool {
    // SAFETY: reading the type word of a zval.
    unsafe { value.u1.v.type_flags & 1 != 0 }
}

/// An array or property table, valid while its holder (a [`Zval`] holding the array, or a
/// [`PropertyTable`]) lives.
#[derive(Clone, Copy)]
pub struct Table(*mut zend_array);

impl Table {
    /// The array `held` holds (a counted reference the caller keeps).
    pub fn of_array(held: &Zval) -> Option<Self> {
        if !held.is_array() {
            return None;
        }
        // SAFETY: `arr` is the live member of the value union for arrays.
        Some(Table(unsafe { held.value.arr }))
    }

    /// The table as ext-php-rs reads it, for walking its entries.
    ///
    /// # Safety
    /// The holder outlives `'a`. (The engine may still change the table's header meanwhile, its
    /// reference count or recursion flag; ext-php-rs's iterator reads only the entries, which a
    /// held table keeps: any write separates it.)
    pub unsafe fn entries<'a>(self) -> &'a ZendHashTable {
        unsafe { &*self.0 }
    }
}

/// An object, valid while the [`Zval`] holding it lives.
#[derive(Clone, Copy)]
pub struct Object(*mut zend_object);

impl Object {
    /// The object `held` holds (a counted reference the caller keeps).
    pub fn of(held: &Zval) -> Option<Self> {
        if !held.is_object() {
            return None;
        }
        // SAFETY: `obj` is the live member of the value union for objects.
        Some(Object(unsafe { held.value.obj }))
    }

    pub fn class(self) -> &'static ClassEntry {
        // SAFETY: a live object's class entry outlives the request.
        unsafe { &*(*self.0).ce }
    }

    /// The class name, for messages.
    pub fn class_name(self) -> String {
        self.class().name().unwrap_or("object").to_string()
    }

    pub fn is(self, other: Object) -> bool {
        self.0 == other.0
    }

    /// Calls the object's method `name` (lower-case lookup) without arguments, as json_encode
    /// calls `jsonSerialize()`. `None` when it has no such method; the result is UNDEF when the
    /// method threw. Runs user code: call it inside [`catch_fatal`].
    pub fn call(self, name: &str) -> Option<Zval> {
        let ce = self.class() as *const ClassEntry as *mut ext_php_rs::ffi::zend_class_entry;
        // SAFETY: the class entry and its function table live as long as the class; the name is
        // passed with its length.
        let function = unsafe {
            zend_hash_str_find_ptr_lc(
                addr_of_mut!((*ce).function_table),
                name.as_ptr().cast::<c_char>(),
                name.len(),
            )
        }
        .cast::<zend_function>();
        if function.is_null() {
            return None;
        }
        let mut result = Zval::new();
        // SAFETY: a method of the object's class, called on the (held) object with no
        // arguments; `result` receives an owned value or stays UNDEF.
        unsafe {
            zend_call_known_function(
                function,
                self.0,
                ce,
                &mut result,
                0,
                ptr::null_mut(),
                ptr::null_mut(),
            );
        }
        Some(result)
    }

    /// The value of a backed enum case (`zend_enum_fetch_case_value`: its second property slot).
    ///
    /// # Safety
    /// The object is a case of a backed enum.
    pub unsafe fn backed_enum_value<'a>(self) -> &'a Zval {
        // SAFETY: enum case objects have the "name" then the "value" property slot, inline after
        // the object header (`OBJ_PROP_NUM(obj, 1)`); a case's value never changes.
        unsafe {
            &*addr_of_mut!((*self.0).properties_table)
                .cast::<Zval>()
                .add(1)
        }
    }
}

/// The recursion flag of an array or a property table, set while it is being encoded.
pub struct Protected(*mut zend_array);

impl Protected {
    /// Flags `table`, or `None` when it is flagged already: it contains itself.
    pub fn new(table: Table) -> Option<Self> {
        // SAFETY: the table is alive (see `Table`); only its header word is read and written,
        // through the raw pointer.
        unsafe {
            let info = addr_of_mut!((*table.0).gc.u.type_info);
            let flags = info.read();
            if flags & GC_PROTECTED != 0 {
                return None;
            }
            // Immutable values are shared read-only memory and cannot contain themselves.
            if flags & GC_IMMUTABLE != 0 {
                return Some(Protected(ptr::null_mut()));
            }
            info.write(flags | GC_PROTECTED);
        }
        Some(Protected(table.0))
    }
}

impl Drop for Protected {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: set in `new` on a table that is still alive (the encoder holds it).
            unsafe {
                let info = addr_of_mut!((*self.0).gc.u.type_info);
                info.write(info.read() & !GC_PROTECTED);
            }
        }
    }
}

/// An object's JSON recursion flag, set while its `jsonSerialize()` runs and its result is
/// encoded: the JSON bit of its recursion guard (`ZEND_GUARD_PROTECT_RECURSION(guard, JSON)`, PHP
/// 8.3 and later, the very flag json_encode uses, so the two see each other's recursion), or, on
/// PHP 8.2 or for an object without guards, `GC_PROTECTED` on the object (8.2's guard word holds
/// property guards, which a foreign bit would confuse).
pub struct RecursionGuard {
    word: *mut u32,
    bit: u32,
}

impl RecursionGuard {
    /// Sets the flag of `object`, or `None` when it is set already (the object is inside its own
    /// `jsonSerialize()`: json_encode calls that recursion too).
    pub fn enter(object: Object) -> Option<Self> {
        // SAFETY: the object is alive (held by the encoder); both words are inside it.
        unsafe {
            let guard = recursion_guard(object.0);
            let (word, bit) = if guard.is_null() || GUARD_RECURSION_JSON == 0 {
                (addr_of_mut!((*object.0).gc.u.type_info), GC_PROTECTED)
            } else {
                (guard, GUARD_RECURSION_JSON)
            };
            let flags = word.read();
            if flags & bit != 0 {
                return None;
            }
            word.write(flags | bit);
            Some(RecursionGuard { word, bit })
        }
    }
}

impl Drop for RecursionGuard {
    fn drop(&mut self) {
        // SAFETY: the object outlives the guard (the encoder holds it).
        unsafe { self.word.write(self.word.read() & !self.bit) };
    }
}

/// `zend_get_recursion_guard` (an engine function ext-php-rs does not bind, written out so that
/// the extension imports nothing more from PHP): the guard word of the slot after the object's
/// declared properties, for classes that have guards.
///
/// # Safety
/// `object` is alive.
unsafe fn recursion_guard(object: *mut zend_object) -> *mut u32 {
    unsafe {
        let ce = (*object).ce;
        if (*ce).ce_flags & ZEND_ACC_USE_GUARDS == 0 {
            return ptr::null_mut();
        }
        let count = usize::try_from((*ce).default_properties_count).unwrap_or(0);
        let slot = addr_of_mut!((*object).properties_table)
            .cast::<Zval>()
            .add(count);
        // `Z_GUARD`: the zval's second word (u2; the member is named `guard` only from PHP 8.3).
        addr_of_mut!((*slot).u2).cast::<u32>()
    }
}

/// An object's property table for JSON (`zend_get_properties_for(obj, JSON)`), with the counted
/// reference that call takes, released on drop (`zend_release_properties`). While it is held, a
/// property unset or added by user code changes a copy, not the table being walked.
pub struct PropertyTable(*mut zend_array);

impl PropertyTable {
    /// The properties of the object `held` holds, as `zend_get_properties_for(obj, JSON)` gives
    /// them (written out through the object's handlers, so that the extension imports nothing
    /// more from PHP than ext-php-rs binds, which the Windows import library is made of). The
    /// encoder reads stdClass objects and a `jsonSerialize()` that returns `$this`; for the latter
    /// a PHP 8.4 property hook is not run (its backing value is read), where json_encode runs it.
    /// May run the engine's property handlers, which allocate: call it inside [`catch_fatal`].
    pub fn of(held: &Zval) -> Option<Self> {
        let object = Object::of(held)?.0;
        // SAFETY: the object is alive (held); its handlers table and class live at least as long.
        unsafe {
            let handlers = (*object).handlers;
            if let Some(get_properties_for) = (*handlers).get_properties_for {
                let table = get_properties_for(object, _zend_prop_purpose_ZEND_PROP_PURPOSE_JSON);
                return (!table.is_null()).then_some(PropertyTable(table));
            }
            // zend_std_get_properties_for: the table, with a counted reference (GC_TRY_ADDREF).
            let table = ((*handlers).get_properties?)(object);
            if table.is_null() {
                return None;
            }
            let gc = addr_of_mut!((*table).gc);
            if (*gc).u.type_info & GC_IMMUTABLE == 0 {
                (*gc).refcount += 1;
            }
            Some(PropertyTable(table))
        }
    }

    pub fn table(&self) -> Table {
        Table(self.0)
    }
}

impl Drop for PropertyTable {
    fn drop(&mut self) {
        // zend_release_properties: immutable tables are not counted.
        // SAFETY: the table is alive until this reference is released.
        unsafe {
            let gc = addr_of_mut!((*self.0).gc);
            if (*gc).u.type_info & GC_IMMUTABLE == 0 {
                (*gc).refcount -= 1;
                if (*gc).refcount == 0 {
                    zend_array_destroy(self.0);
                }
            }
        }
    }
}
