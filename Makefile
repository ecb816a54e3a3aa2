# The two commands of the README, plus the pieces they are made of.
.PHONY: demo test build provision bench clean

demo:        ## build, start Redis and show a subscriber receiving what PHP publishes
	bash scripts/demo

test:        ## every test: Rust core, PHPUnit on PHP 8.4 NTS and ZTS (CLI and php-fpm)
	bash scripts/test

build:       ## the extension for PHP 8.4 NTS and ZTS (target/{nts,zts}/release/libqrpush.so)
	bash scripts/build all

provision:   ## the cached chroot with PHP 8.4 NTS/ZTS, php-fpm, PHPUnit, redis (outside the repo)
	bash scripts/provision

clean:
	cargo clean
