//! `phpinfo()` / `php --ri qrpush`: version, build, effective configuration (redacted) and the
//! default client's counters. INI entries are printed here rather than by PHP's own
//! display_ini_entries(), which would print the URL with its password.

use ext_php_rs::zend::ModuleEntry;
use ext_php_rs::{info_table_end, info_table_header, info_table_row, info_table_start};
use qrpush_core::SETTINGS;

use crate::{facade, ini};

pub extern "C" fn module_info(_module: *mut ModuleEntry) {
    // A panic must not unwind into the engine from this extern "C" callback.
    let _ = std::panic::catch_unwind(print_info);
}

fn print_info() {
    let zts = if ext_php_rs::PHP_ZTS {
        "enabled (ZTS)"
    } else {
        "disabled (NTS)"
    };
    info_table_start!();
    info_table_row!("QrPush support", "enabled");
    info_table_row!("Version", qrpush_core::VERSION);
    info_table_row!("PHP API", ext_php_rs::ffi::ZEND_MODULE_API_NO.to_string());
    info_table_row!("Thread safety", zts);
    info_table_row!("Build", env!("QRPUSH_BUILD_INFO"));
    info_table_row!(
        "Transports",
        if cfg!(unix) {
            "tcp, tls (rustls), unix"
        } else {
            "tcp, tls (rustls)"
        }
    );
    info_table_end!();

    let default_client = facade::default_client_if_created();
    let config = match &default_client {
        Some(client) => client.config().clone(),
        None => ini::config(),
    };
    info_table_start!();
    info_table_header!("Directive", "Effective value");
    for s in SETTINGS {
        info_table_row!(format!("qrpush.{}", s.name), config.display_value(s.name));
    }
    info_table_end!();

    if let Some(client) = default_client {
        let s = client.stats();
        info_table_start!();
        info_table_header!("Default client (this process)", "Value");
        info_table_row!("published", s.published.to_string());
        info_table_row!("failed", s.failed.to_string());
        info_table_row!("reconnects", s.reconnects.to_string());
        info_table_row!("connections created", s.connections_created.to_string());
        info_table_row!(
            "pool idle / in use / size",
            format!("{} / {} / {}", s.pool_idle, s.pool_in_use, s.pool_size)
        );
        info_table_row!(
            "publish latency p50 / p99 / max",
            format!(
                "{} / {} / {} µs",
                s.latency.p50_us, s.latency.p99_us, s.latency.max_us
            )
        );
        info_table_row!("last error", s.last_error.unwrap_or_else(|| "none".into()));
        let t = &s.topology;
        info_table_row!("topology", t.kind);
        if t.kind == "sentinel" {
            info_table_row!(
                "service / current primary",
                format!(
                    "{} / {}",
                    t.service.as_deref().unwrap_or(""),
                    t.primary.as_deref().unwrap_or("not asked yet")
                )
            );
            info_table_row!("failovers followed", t.failovers.to_string());
        }
        if t.kind == "cluster" {
            info_table_row!("redirects followed (MOVED/ASK)", t.redirects.to_string());
        }
        let b = &s.breaker;
        let since = b
            .opened_at
            .map(|t| format!(", opened at {t:.3} (Unix time)"))
            .unwrap_or_default();
        info_table_row!(
            "circuit breaker",
            format!(
                "{}{since}; {} trips, {} fast failures",
                b.state.as_str(),
                b.trips,
                b.fast_failures
            )
        );
        info_table_end!();
    }
}
