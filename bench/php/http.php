<?php
// GET URL; prints the body; exits non-zero (with the body) unless the status is 200.
$url = $argv[1] ?? '';
$ctx = stream_context_create(['http' => ['ignore_errors' => true, 'timeout' => 600]]);
$body = @file_get_contents($url, false, $ctx);
$status = $http_response_header[0] ?? 'no response';
if ($body === false || !str_contains($status, ' 200')) {
    fwrite(STDERR, "GET {$url}: {$status}\n" . (string) $body . "\n");
    exit(1);
}
echo $body;
