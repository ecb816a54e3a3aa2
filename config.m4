dnl QrPush is written in Rust (ext-php-rs): this config.m4 lets the usual PHP extension build
dnl (`phpize && ./configure && make && make install`, which is also what PIE runs on Linux and
dnl macOS) build it with cargo.
dnl
dnl What `make` does: `cargo build --release -p qrpush` with PHP and PHP_CONFIG set to the PHP this
dnl tree was configured for (--with-php-config, as for any extension), so ext-php-rs generates its
dnl bindings for that exact PHP (version, ZTS or NTS), then copies the library to modules/qrpush.so.
dnl `make install` installs modules/qrpush.so like any other extension.
dnl
dnl Needs: cargo/rustc (Rust >= the rust-version in Cargo.toml; found on PATH, in ~/.cargo/bin, or
dnl given as CARGO=/path/to/cargo), libclang for bindgen (Debian: libclang-dev). Cargo downloads the
dnl crates of Cargo.lock unless they are already in its cache.
dnl
dnl Environment honoured at configure time: CARGO, CARGO_TARGET_DIR (where cargo builds; default
dnl ./target), QRPUSH_CARGO_FLAGS (extra `cargo build` flags, e.g. --offline).

PHP_ARG_ENABLE([qrpush],
  [whether to enable QrPush (Redis Pub/Sub publisher, built with cargo)],
  [AS_HELP_STRING([--enable-qrpush],
    [Enable QrPush [default=yes]])],
  [yes])

PHP_ARG_ENABLE([qrpush-debug],
  [whether to build QrPush with cargo's debug profile],
  [AS_HELP_STRING([--enable-qrpush-debug],
    [Build QrPush without optimisations (cargo's dev profile)])],
  [no],
  [no])

if test "$PHP_QRPUSH" != "no"; then
  dnl cargo: $CARGO, else PATH, else rustup's default location (PIE and sudo often run without
  dnl ~/.cargo/bin on PATH).
  AC_PATH_PROG([CARGO], [cargo], [no], [$PATH$PATH_SEPARATOR$HOME/.cargo/bin])
  if test "$CARGO" = "no" || test ! -x "$CARGO"; then
    AC_MSG_ERROR([cargo not found. QrPush is written in Rust: install it with rustup (https://rustup.rs), or pass CARGO=/path/to/cargo to ./configure])
  fi
  dnl rustup's cargo proxy finds rustc next to itself; a cargo outside PATH needs its directory.
  QRPUSH_CARGO_BIN_DIR=$(dirname "$CARGO")

  dnl ext-php-rs reads PHP_CONFIG (headers) and PHP (`php -i`: version, ZTS, debug); both must
  dnl name the PHP this tree is configured for, as absolute paths.
  QRPUSH_PHP_CONFIG=$PHP_CONFIG
  case $QRPUSH_PHP_CONFIG in
    /*) ;;
    *) QRPUSH_PHP_CONFIG=$(command -v "$QRPUSH_PHP_CONFIG" 2>/dev/null) ;;
  esac
  if test -z "$QRPUSH_PHP_CONFIG" || test ! -x "$QRPUSH_PHP_CONFIG"; then
    AC_MSG_ERROR([cannot resolve php-config ($PHP_CONFIG) to an executable path; use --with-php-config=/path/to/php-config])
  fi
  QRPUSH_PHP=$PHP_EXECUTABLE
  if test -z "$QRPUSH_PHP" || test ! -x "$QRPUSH_PHP"; then
    AC_MSG_ERROR([php-config --php-binary ($QRPUSH_PHP) is not an executable; ext-php-rs needs the php binary])
  fi
  AC_MSG_CHECKING([for the PHP QrPush is built for])
  AC_MSG_RESULT([$QRPUSH_PHP (ZTS: $PHP_THREAD_SAFETY, debug: $ZEND_DEBUG)])

  if test "$PHP_QRPUSH_DEBUG" != "no"; then
    QRPUSH_CARGO_PROFILE_FLAG=
    QRPUSH_CARGO_PROFILE_DIR=debug
  else
    QRPUSH_CARGO_PROFILE_FLAG=--release
    QRPUSH_CARGO_PROFILE_DIR=release
  fi
  QRPUSH_TARGET_DIR=${CARGO_TARGET_DIR:-$abs_srcdir/target}
  case $host_os in
    darwin*) QRPUSH_CARGO_LIB=libqrpush.dylib ;;
    *) QRPUSH_CARGO_LIB=libqrpush.so ;;
  esac
  AC_MSG_CHECKING([where cargo builds])
  AC_MSG_RESULT([$QRPUSH_TARGET_DIR/$QRPUSH_CARGO_PROFILE_DIR/$QRPUSH_CARGO_LIB])

  PHP_SUBST([CARGO])
  PHP_SUBST([QRPUSH_CARGO_BIN_DIR])
  PHP_SUBST([QRPUSH_PHP])
  PHP_SUBST([QRPUSH_PHP_CONFIG])
  PHP_SUBST([QRPUSH_TARGET_DIR])
  PHP_SUBST([QRPUSH_CARGO_PROFILE_FLAG])
  PHP_SUBST([QRPUSH_CARGO_PROFILE_DIR])
  PHP_SUBST([QRPUSH_CARGO_LIB])
  QRPUSH_CARGO_FLAGS=${QRPUSH_CARGO_FLAGS:-}
  PHP_SUBST([QRPUSH_CARGO_FLAGS])

  dnl No C sources, so no PHP_NEW_EXTENSION: the one module is the library cargo builds. phpize's
  dnl Makefile builds $(PHP_MODULES) for `make` and installs modules/* for `make install`.
  PHP_MODULES='$(phplibdir)/qrpush.so'

  dnl The rule depends on the Rust sources (not on a phony target) so that `sudo make install`
  dnl after `make` installs what was built instead of running cargo again as root, and on the
  dnl Makefile so that re-running ./configure for another PHP rebuilds for that PHP.
  cat >>Makefile.fragments <<'QRPUSH_EOF'

QRPUSH_SOURCES = $(wildcard $(srcdir)/Cargo.toml $(srcdir)/Cargo.lock $(srcdir)/build.rs \
	$(srcdir)/.cargo/config.toml $(srcdir)/src/*.rs $(srcdir)/src/*/*.rs \
	$(srcdir)/crates/*/Cargo.toml $(srcdir)/crates/*/build.rs $(srcdir)/crates/*/src/*.rs \
	$(srcdir)/crates/*/src/*/*.rs $(srcdir)/crates/*/src/*/*/*.rs)

$(phplibdir)/qrpush.so: $(QRPUSH_SOURCES) Makefile
	@echo "Building QrPush with cargo for $(QRPUSH_PHP)"
	cd "$(srcdir)" && PATH="$(QRPUSH_CARGO_BIN_DIR):$$PATH" PHP="$(QRPUSH_PHP)" PHP_CONFIG="$(QRPUSH_PHP_CONFIG)" \
		"$(CARGO)" build --locked $(QRPUSH_CARGO_PROFILE_FLAG) -p qrpush --target-dir "$(QRPUSH_TARGET_DIR)" $(QRPUSH_CARGO_FLAGS)
	@$(mkinstalldirs) "$(phplibdir)"
	cp "$(QRPUSH_TARGET_DIR)/$(QRPUSH_CARGO_PROFILE_DIR)/$(QRPUSH_CARGO_LIB)" "$@.tmp"
	mv -f "$@.tmp" "$@"
QRPUSH_EOF
fi
