<?php
// Summarises a valgrind log of tests/leaks/run: PHP's totals, and what has a frame in
// libqrpush.so (the extension, Rust core included). Exits 1 when the extension lost memory
// definitely or made an invalid access.
//   php valgrind-report.php FLAVOUR VALGRIND_LOG WORKLOAD_OUTPUT SECONDS
[, $flavour, $logFile, $outFile, $seconds] = $argv;
$log = (string) file_get_contents($logFile);
$workload = json_decode(trim((string) file_get_contents($outFile)), true) ?? [];
// Blocks are separated by "==pid== " lines with nothing after the prefix.
$lines = preg_replace('/^==\d+== ?/m', '', $log);
$blocks = preg_split('/\n\s*\n/', $lines);
$ours = ['definitely' => [0, 0], 'indirectly' => [0, 0], 'possibly' => [0, 0]];
$errors = ['ours' => [], 'php' => 0];
foreach ($blocks as $block) {
    $inQrpush = str_contains($block, 'libqrpush');
    // "1,074 (768 direct, 306 indirect) bytes in 1 blocks are definitely lost": 768 are.
    if (preg_match('/^([\d,]+) (?:\(([\d,]+) direct, [\d,]+ indirect\) )?bytes in ([\d,]+) blocks are (definitely|indirectly|possibly) lost/m', $block, $m)) {
        if ($inQrpush) {
            $bytes = $m[2] !== '' ? $m[2] : $m[1];
            $m = [$m[0], $bytes, $m[3], $m[4]];
            $ours[$m[3]][0] += (int) str_replace(',', '', $m[1]);
            $ours[$m[3]][1] += (int) str_replace(',', '', $m[2]);
            if ($m[3] === 'definitely') {
                fwrite(STDERR, "--- definitely lost in libqrpush.so ---\n{$block}\n");
            }
        }
    } elseif (preg_match('/^(Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap)/m', $block, $m)) {
        if ($inQrpush) {
            $errors['ours'][] = $m[1];
            fwrite(STDERR, "--- memory error in libqrpush.so ---\n{$block}\n");
        } else {
            $errors['php']++;
        }
    }
}
$summary = static function (string $kind) use ($lines): string {
    return preg_match("/{$kind} lost: ([\\d,]+) bytes in ([\\d,]+) blocks/", $lines, $m) ? "{$m[1]} bytes in {$m[2]} blocks" : '0 bytes (no leak reported)';
};
preg_match('/ERROR SUMMARY: ([\d,]+) errors from ([\d,]+) contexts/', $lines, $es);
$rows = [
    'workload' => sprintf('%s publishes, %s login flows redeemed, %s rejected calls; %s s under valgrind',
        $workload['publishes'] ?? '?', $workload['logins_redeemed'] ?? '?', $workload['thrown'] ?? '?', $seconds),
    'whole process: definitely lost' => $summary('definitely'),
    'whole process: indirectly lost' => $summary('indirectly'),
    'whole process: possibly lost' => $summary('possibly'),
    'whole process: errors' => ($es[1] ?? '?') . ' (' . $errors['php'] . ' memory-error contexts outside libqrpush.so)',
    'libqrpush.so: definitely lost' => "{$ours['definitely'][0]} bytes in {$ours['definitely'][1]} blocks",
    'libqrpush.so: indirectly lost' => "{$ours['indirectly'][0]} bytes in {$ours['indirectly'][1]} blocks",
    'libqrpush.so: possibly lost' => "{$ours['possibly'][0]} bytes in {$ours['possibly'][1]} blocks",
    'libqrpush.so: invalid accesses' => (string) count($errors['ours']),
];
echo "\n[" . strtoupper($flavour) . "] valgrind (memcheck, USE_ZEND_ALLOC=0)\n";
foreach ($rows as $k => $v) {
    printf("%-34s %s\n", $k, $v);
}
echo "(possibly lost: interior pointers into the process-wide statics, i.e. the pool map and a pooled\n"
    . " connection's read buffer: a fixed amount per process, not per call; PHP's own records are not judged)\n";
exit($ours['definitely'][0] === 0 && $errors['ours'] === [] ? 0 : 1);
