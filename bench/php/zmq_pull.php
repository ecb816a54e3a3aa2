<?php
// The PULL end for the ext-zmq contender: binds, receives and drops messages until killed.
//   php zmq_pull.php PORT
$port = (int) ($argv[1] ?? 0);
$s = new ZMQSocket(new ZMQContext(1), ZMQ::SOCKET_PULL);
$s->bind("tcp://127.0.0.1:{$port}");
fwrite(STDERR, "zmq PULL bound on 127.0.0.1:{$port}\n");
while (true) {
    $s->recv();
}
