<?php

/**
 * Arguments for the Socket.IO interop emits, as PHP values: what QrPush\SocketIo::emit() turns
 * into MessagePack. No map has keys that look like integers: JavaScript objects put those first,
 * so the real emitter, given the parsed JSON, would write them in another order (same values).
 */

enum InteropStatus: string
{
    case Open = 'open';
}

return [
    'none' => [],
    'text' => ['hello from PHP'],
    'mixed' => [
        'héllo / 👋',
        42,
        -7,
        2.0,
        0.1 + 0.2,
        1.5e-7,
        true,
        null,
        [1, 2, 3],
        ['nested' => ['deep' => [true, false]], 'empty' => [], 'object' => new stdClass()],
        InteropStatus::Open,
        str_repeat('long ', 20),
        1099511627776,
        -40000,
        70000,
    ],
];
