# The two commands of the README, plus the pieces they are made of.
.PHONY: demo test build provision bench clean soak leaks windows-check

demo:        ## the QR-login demo: Redis, php-fpm, two WebSocket gateways, nginx (prints the URL)
	bash scripts/demo

test:        ## every test: Rust core, PHPUnit on PHP 8.4 NTS and ZTS (CLI and php-fpm)
	bash scripts/test

leaks:       ## slow memory checks: valgrind over 100k publishes + login flows, php-fpm RSS over 1M publishes
	bash scripts/build all
	bash tests/leaks/run

soak:        ## the fault-injection suite's long run: every fault 4 times under php-fpm load (minutes)
	bash scripts/build all
	bash tests/fault/run --soak

bench:       ## QrPush vs phpredis, predis, ext-zmq and raw floors, side by side (BENCHMARKS.md)
	bash bench/run

windows-check: ## php_qrpush.dll built here for TS and NTS, inspected; NTS loaded into Windows PHP 8.4 under Wine, smoke + PHPUnit
	bash scripts/windows-check

build:       ## the extension for PHP 8.4 NTS and ZTS (target/{nts,zts}/release/libqrpush.so)
	bash scripts/build all

provision:   ## the cached chroot with PHP 8.4 NTS/ZTS, php-fpm, PHPUnit, redis (outside the repo)
	bash scripts/provision

clean:
	cargo clean
