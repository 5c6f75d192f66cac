import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadTelemetryConfig } from '../../config/telemetry-config.js';
import { isPmsError } from '../../errors/catalogue.js';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { runTool } from '../../process/tool-process.js';
import { openTelemetryPool } from './telemetry-pool.js';

let dir: string;
let cluster: ThrowawayCluster;

/** A CA and a server certificate for DNS:localhost, made fresh by openssl for this run. */
async function makeCertificates(into: string): Promise<void> {
  const ssl = (args: string[]) => runTool('openssl', args, { cwd: into });
  await ssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=pms test CA',
  ]);
  await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(into, 'san.ext'), 'subjectAltName=DNS:localhost\n');
  await ssl([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  ]);
  await ssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'other.key',
    '-out',
    'other-ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=some other CA',
  ]);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pms-tls-'));
  await makeCertificates(dir);
  if (process.getuid?.() === 0) {
    const uid = Number((await runTool('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await runTool('id', ['-g', 'postgres'])).stdout.trim());
    // The server runs as postgres and refuses a key others can read, so hand it the files.
    for (const f of ['.', 'server.key', 'server.pem']) chownSync(join(dir, f), uid, gid);
  }
  // This test's own certificates, not the throwaway cluster's (tls: false keeps ours off the command line).
  cluster = await startThrowawayCluster({
    tls: false,
    settings: { ssl: true, ssl_cert_file: join(dir, 'server.pem'), ssl_key_file: join(dir, 'server.key') },
  });
});

after(async () => {
  await cluster?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const envFor = (extra: Record<string, string>) => ({
  POSTGRES_PORT: String(cluster.port),
  POSTGRES_USER: 'postgres',
  POSTGRES_DB: 'postgres',
  ...extra,
});

test('POSTGRES_SSLMODE=verify-full connects over TLS to a server whose certificate our CA signed for the host name', async () => {
  const pool = await openTelemetryPool(
    loadTelemetryConfig(envFor({ POSTGRES_HOST: 'localhost', POSTGRES_SSLMODE: 'verify-full', POSTGRES_SSLROOTCERT: join(dir, 'ca.pem') })),
  );
  try {
    const { rows } = await pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    assert.deepEqual(rows, [{ ssl: true }]);
  } finally {
    await pool.end();
  }
});

test('verify-full refuses a server certificate from another CA, and one not issued for the host name', async () => {
  await assert.rejects(
    openTelemetryPool(
      loadTelemetryConfig(
        envFor({ POSTGRES_HOST: 'localhost', POSTGRES_SSLMODE: 'verify-full', POSTGRES_SSLROOTCERT: join(dir, 'other-ca.pem') }),
      ),
    ),
    (error) => isPmsError(error, 'PMS_ERR_DB_UNAVAILABLE'),
  );
  await assert.rejects(
    openTelemetryPool(
      loadTelemetryConfig(
        envFor({ POSTGRES_HOST: '127.0.0.1', POSTGRES_SSLMODE: 'verify-full', POSTGRES_SSLROOTCERT: join(dir, 'ca.pem') }),
      ),
    ),
    (error) => isPmsError(error, 'PMS_ERR_DB_UNAVAILABLE'),
  );
});

test('verify-full without POSTGRES_SSLROOTCERT is a configuration error reported before connecting', () => {
  assert.throws(
    () => loadTelemetryConfig(envFor({ POSTGRES_HOST: 'localhost', POSTGRES_SSLMODE: 'verify-full' })),
    (error) => isPmsError(error, 'PMS_ERR_CONFIG'),
  );
});
