<?php
// Versions and machine facts for the report (run inside the benchmark's environment).
$cpu = (string) @file_get_contents('/proc/cpuinfo');
preg_match('/^model name\s*:\s*(.+)$/m', $cpu, $m);
$mem = (string) @file_get_contents('/proc/meminfo');
preg_match('/^MemTotal:\s+(\d+)/m', $mem, $t);
require_once '/usr/share/php/Predis/autoload.php';
$out = [
    'nproc' => (int) trim((string) shell_exec('nproc')),
    'cpu' => trim($m[1] ?? 'unknown'),
    'mem_gb' => round(((int) ($t[1] ?? 0)) / 1048576, 1),
    'kernel' => php_uname('s') . ' ' . php_uname('r') . ' ' . php_uname('m'),
    'os' => trim((string) shell_exec('. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"')),
    'php' => PHP_VERSION . (PHP_ZTS ? ' ZTS' : ' NTS'),
    'opcache_cli' => (bool) ini_get('opcache.enable_cli'),
    'qrpush' => phpversion('qrpush') ?: 'not loaded',
    'phpredis' => phpversion('redis') ?: 'not loaded',
    'predis' => Predis\Client::VERSION,
    'zmq' => (phpversion('zmq') ?: 'not loaded') . ' (libzmq ' . (class_exists('ZMQ') ? ZMQ::LIBZMQ_VER : '?') . ')',
    'redis' => trim((string) shell_exec("redis-server --version | sed -E 's/.* v=([^ ]+).*/\\1/'")),
    'nginx' => trim((string) shell_exec("nginx -v 2>&1 | sed 's/.*nginx\\///'")),
    'wrk' => trim((string) shell_exec("wrk -v 2>&1 | head -1 | awk '{print \$2}'")),
    'date' => gmdate('Y-m-d H:i') . ' UTC',
];
echo json_encode($out, JSON_UNESCAPED_SLASHES), "\n";
