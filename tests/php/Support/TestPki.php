<?php

declare(strict_types=1);

namespace QrPush\Tests;

/**
 * Certificates for the TLS tests, made by the openssl CLI in a temporary directory: `ca.pem` (the
 * test CA), `server.pem`/`server.key` (localhost, 127.0.0.1, signed by it) and `other-ca.pem`, an
 * unrelated CA whose trust must make verification fail.
 */
final class TestPki
{
    /** Makes the files in a new temporary directory and returns it (remove it with Processes::removeDir). */
    public static function create(): string
    {
        $dir = Processes::tempDir('tls-pki');
        $ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
        foreach (['ca' => 'QrPush test CA', 'other-ca' => 'Some other CA'] as $name => $cn) {
            self::openssl(['req', '-x509', ...$ec, '-keyout', "{$dir}/{$name}.key", '-out', "{$dir}/{$name}.pem",
                '-days', '2', '-subj', "/CN={$cn}",
                '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
        }
        self::openssl(['req', '-new', ...$ec, '-keyout', "{$dir}/server.key", '-out', "{$dir}/server.csr", '-subj', '/CN=localhost']);
        file_put_contents("{$dir}/server.ext", implode("\n", [
            'subjectAltName=DNS:localhost,IP:127.0.0.1',
            'basicConstraints=CA:FALSE',
            'keyUsage=critical,digitalSignature',
            'extendedKeyUsage=serverAuth',
        ]) . "\n");
        self::openssl(['x509', '-req', '-in', "{$dir}/server.csr", '-CA', "{$dir}/ca.pem", '-CAkey', "{$dir}/ca.key",
            '-set_serial', '0x' . bin2hex(random_bytes(8)), '-days', '2', '-out', "{$dir}/server.pem", '-extfile', "{$dir}/server.ext"]);
        return $dir;
    }

    /**
     * redis-server arguments for a TLS port beside the plain one, with this PKI's server
     * certificate; clients are not asked for one.
     *
     * @return list<string>
     */
    public static function serverArgs(string $dir, int $tlsPort): array
    {
        return [
            '--tls-port', (string) $tlsPort,
            '--tls-cert-file', "{$dir}/server.pem",
            '--tls-key-file', "{$dir}/server.key",
            '--tls-ca-cert-file', "{$dir}/ca.pem",
            '--tls-auth-clients', 'no',
        ];
    }

    /** @param list<string> $args */
    private static function openssl(array $args): void
    {
        $result = PhpProcess::exec(['openssl', ...$args], 30.0);
        if ($result->exitCode !== 0) {
            throw new \RuntimeException('making the test certificates failed: ' . $result->describe());
        }
    }
}

/**
 * For a test class that needs the certificates: one TestPki directory for the whole class, in
 * `self::$pki`, removed after its last test.
 */
trait UsesTestPki
{
    private static string $pki = '';

    public static function setUpBeforeClass(): void
    {
        self::$pki = TestPki::create();
    }

    public static function tearDownAfterClass(): void
    {
        if (self::$pki !== '') {
            Processes::removeDir(self::$pki);
        }
    }
}
