# The two commands of the README (make demo, make test), plus the pieces they are made of.
# `make help` lists them; every target first provisions what it needs (docs/DEVELOPMENT.md).
.PHONY: help demo test build provision bench soak leaks windows-check clean

help:        ## this list
	@sed -n 's/^\([a-z]*\): *## \(.*\)/make \1\t\2/p' $(MAKEFILE_LIST) | expand -t 16

demo:        ## scripts/demo: builds the extension (NTS) and the gateway, then php/stack runs redis-server, php-fpm with the extension, two WebSocket gateways and nginx on 127.0.0.1:8080 (Ctrl-C stops them); QRPUSH_DEMO_TOPOLOGY=cluster: a 3+3 Redis Cluster instead of one redis-server
	bash scripts/demo

test:        ## scripts/test: the provisioning tests (tests/provision); rustfmt + clippy; cargo test of the core; PHPUnit on PHP 8.4 NTS and ZTS (CLI, php-fpm, nginx); the gateway's cargo tests and the browser test (tests/e2e); Laravel Echo Server and Socket.IO servers from npm (tests/interop); the short fault suite; the short topology fault table (Sentinel, Cluster); the benchmark smoke run; the phpize build NTS and ZTS; ZTS under Apache's event MPM
	bash scripts/test

leaks:       ## tests/leaks/run (minutes): valgrind over 100k publishes + 200 login flows, and php-fpm worker RSS over 1M publishes, NTS and ZTS
	bash scripts/build all
	bash tests/leaks/run

soak:        ## tests/fault/run --soak (minutes): every fault 4 times, longer, under php-fpm load, NTS and ZTS; then the topology fault table (--topology): every Sentinel/Cluster fault 3 times
	bash scripts/build all
	bash tests/fault/run --soak
	bash tests/fault/run --soak --topology

bench:       ## bench/run (13 minutes + the Redis Cluster section): QrPush against phpredis, predis, ext-zmq, the raw floors and on Redis Cluster; writes bench/results/ (BENCHMARKS.md)
	bash bench/run

windows-check: ## scripts/windows-check: php_qrpush.dll cross-built here for TS and NTS (type-check, link, inspect); the NTS DLL loaded into a real Windows PHP 8.4 under Wine: smoke script, core unit tests, PHPUnit (docs/PORTABILITY.md)
	bash scripts/windows-check

build:       ## scripts/build all: the extension for PHP 8.4 NTS and ZTS (target/{nts,zts}/release/libqrpush.so)
	bash scripts/build all

provision:   ## scripts/provision: the cached chroot with PHP 8.4 NTS/ZTS, php-fpm, PHPUnit, redis, nginx (outside the repository)
	bash scripts/provision

clean:       ## cargo clean (the toolchain cache stays)
	cargo clean
