import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type GpgKeyPair, generateGpgKeyPair, signingEnv } from '../testing/gpg-keys.js';
import { runCli } from '../testing/run-cli.js';
import { type ThrowawayCluster, startThrowawayCluster } from './throwaway-cluster.js';

const PASSWORD = 'pw-must-not-travel-7f3c';
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

interface FakeServer {
  readonly port: number;
  /** How many clients asked for TLS (each was told 'N': no TLS here). */
  sslRequests: number;
  /** Passwords clients sent after being asked for one in clear text. */
  readonly passwords: string[];
  /** Every byte any client sent. */
  received(): Buffer;
  close(): Promise<void>;
}

/**
 * A server that speaks just enough of the PostgreSQL protocol to steal a password: it answers
 * 'N' (no TLS) to SSLRequest, then asks for the password in clear text and keeps what it gets.
 */
async function startFakeServer(): Promise<FakeServer> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const fake = { sslRequests: 0, passwords: [] as string[] };
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    let startupDone = false;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!startupDone) {
          if (buffer.length < 8 || buffer.length < buffer.readInt32BE(0)) return;
          const length = buffer.readInt32BE(0);
          const code = buffer.readInt32BE(4);
          buffer = buffer.subarray(length);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            if (code === SSL_REQUEST) fake.sslRequests += 1;
            socket.write('N');
            continue;
          }
          startupDone = true;
          const askCleartext = Buffer.alloc(9);
          askCleartext.write('R', 0);
          askCleartext.writeInt32BE(8, 1);
          askCleartext.writeInt32BE(3, 5);
          socket.write(askCleartext);
          continue;
        }
        if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
        const type = String.fromCharCode(buffer[0] ?? 0);
        const length = buffer.readInt32BE(1);
        const body = buffer.subarray(5, 1 + length);
        buffer = buffer.subarray(1 + length);
        if (type === 'p') {
          fake.passwords.push(body.toString('utf8').replace(/\0$/, ''));
          const text = 'SFATAL\0C28P01\0Mpassword authentication failed\0\0';
          const error = Buffer.alloc(5 + Buffer.byteLength(text));
          error.write('E', 0);
          error.writeInt32BE(4 + Buffer.byteLength(text), 1);
          error.write(text, 5);
          socket.end(error);
          return;
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(fake, {
    port: (server.address() as AddressInfo).port,
    received: () => Buffer.concat(chunks),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

let cluster: ThrowawayCluster;
let key: GpgKeyPair;
let work: string;
let env: Record<string, string>;

before(async () => {
  [cluster, key] = await Promise.all([startThrowawayCluster(), generateGpgKeyPair({ name: 'PMS TLS Test' })]);
  await cluster.psql('CREATE DATABASE patient_telemetry');
  await cluster.psql('CREATE TABLE note (id int PRIMARY KEY, text text); INSERT INTO note VALUES (1, $$hello$$)', 'patient_telemetry');
  work = mkdtempSync(join(tmpdir(), 'pms-tls-'));
  env = {
    POSTGRES_DB: 'patient_telemetry',
    POSTGRES_USER: 'postgres',
    BACKUP_REPOSITORY: `file://${work}`,
    BACKUP_GPG_PUBLIC_KEY_FILE: key.publicKeyFile,
    BACKUP_GPG_KEY_ID: key.fingerprint,
    ...signingEnv(key),
  };
});

after(async () => {
  await cluster?.destroy();
  key?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The warn lines of one command's log (each run gets a log directory of its own). */
function insecureLines(logDir: string): string[] {
  return readdirSync(logDir)
    .flatMap((file) => readFileSync(join(logDir, file), 'utf8').split('\n'))
    .filter((line) => line.includes('"level":"warn"') && line.includes('insecure connection'));
}

describe('TLS by default', () => {
  test('with default settings a server that offers no TLS and asks for a clear-text password gets nothing: create refuses clearly', async () => {
    const fake = await startFakeServer();
    try {
      const result = await runCli('pms-backup', ['create'], {
        ...env,
        POSTGRES_HOST: '127.0.0.1',
        POSTGRES_PORT: String(fake.port),
        POSTGRES_PASSWORD: PASSWORD,
        POSTGRES_SSLROOTCERT: cluster.caFile ?? '',
        BACKUP_LOG_DIR: mkdtempSync(join(work, 'logs-')),
      });
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /PMS_ERR_DB_UNAVAILABLE/);
      assert.match(result.stderr, /offers no TLS and POSTGRES_SSLMODE=verify-full requires it, so nothing \(no password\) was sent/);
      assert.ok(fake.sslRequests >= 1, 'the client asked for TLS');
      assert.deepEqual(fake.passwords, []);
      assert.ok(!fake.received().includes(PASSWORD), 'the password is in no byte the server received');
    } finally {
      await fake.close();
    }
  });

  test('control: with POSTGRES_SSLMODE=prefer named explicitly the same server does get the password, and the log says insecure', async () => {
    const fake = await startFakeServer();
    const logDir = mkdtempSync(join(work, 'logs-'));
    try {
      const result = await runCli('pms-backup', ['create'], {
        ...env,
        POSTGRES_HOST: '127.0.0.1',
        POSTGRES_PORT: String(fake.port),
        POSTGRES_PASSWORD: PASSWORD,
        POSTGRES_SSLMODE: 'prefer',
        BACKUP_LOG_DIR: logDir,
      });
      assert.notEqual(result.code, 0);
      assert.deepEqual(fake.passwords, [PASSWORD], 'the fake server would have caught a leak');
      assert.equal(insecureLines(logDir).length, 1);
    } finally {
      await fake.close();
    }
  });

  test('verify-full (the default) against the throwaway CA: create and doctor say nothing insecure', async () => {
    const logDir = mkdtempSync(join(work, 'logs-'));
    const secure: Record<string, string> = { ...env, ...cluster.postgresEnv, BACKUP_LOG_DIR: logDir };
    assert.equal(secure['POSTGRES_SSLMODE'], 'verify-full');
    const { POSTGRES_SSLMODE: _default, ...withDefault } = secure;
    const created = await runCli('pms-backup', ['create'], withDefault);
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(insecureLines(logDir), []);
    const doctor = await runCli('pms-backup', ['doctor', '--json'], withDefault);
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }).checks;
    const tls = checks.find((c) => c.name === 'database tls');
    assert.equal(tls?.ok, true, JSON.stringify(tls));
    assert.match(tls?.detail ?? '', /^verify-full: TLS, the server certificate must chain to .*ca\.crt and name 127\.0\.0\.1$/);
    assert.equal(checks.find((c) => c.name === 'database')?.ok, true, doctor.stdout);
  });

  test('an explicit POSTGRES_SSLMODE=prefer works but is insecure: one warning per command in the log, doctor fails its tls check', async () => {
    const logDir = mkdtempSync(join(work, 'logs-'));
    const weak = { ...env, ...cluster.postgresEnv, POSTGRES_SSLMODE: 'prefer', BACKUP_LOG_DIR: logDir };
    const created = await runCli('pms-backup', ['create'], weak);
    assert.equal(created.code, 0, created.stderr);
    // create connects several times (snapshot, pg_dump, row counts): still one line.
    const lines = insecureLines(logDir);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0] ?? '', /insecure connection to PostgreSQL at 127\.0\.0\.1:\d+: POSTGRES_SSLMODE=prefer means plain text/);
    const doctor = await runCli('pms-backup', ['doctor', '--json'], weak);
    assert.equal(doctor.code, 1);
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string; fix?: string }> }).checks;
    const tls = checks.find((c) => c.name === 'database tls');
    assert.equal(tls?.ok, false);
    assert.match(tls?.detail ?? '', /insecure connection/);
    assert.match(tls?.fix ?? '', /POSTGRES_SSLMODE=verify-full and POSTGRES_SSLROOTCERT/);
    const migrate = await runCli('pms-telemetry', ['migrate'], {
      ...cluster.postgresEnv,
      POSTGRES_DB: 'patient_telemetry',
      POSTGRES_SSLMODE: 'require',
    });
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.match(
      migrate.stderr,
      /^warning: insecure connection to PostgreSQL at 127\.0\.0\.1:\d+: POSTGRES_SSLMODE=require means TLS without checking/m,
    );
  });

  test('a Unix socket needs no TLS and no CA, and is not called insecure', async () => {
    const logDir = mkdtempSync(join(work, 'logs-'));
    const created = await runCli('pms-backup', ['create'], {
      ...env,
      POSTGRES_HOST: cluster.socketDir,
      POSTGRES_PORT: String(cluster.port),
      BACKUP_LOG_DIR: logDir,
    });
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(insecureLines(logDir), []);
  });

  test('verify-full without POSTGRES_SSLROOTCERT is PMS_ERR_CONFIG naming both variables, before any connection', async () => {
    const { POSTGRES_SSLROOTCERT: _ca, ...noCa } = cluster.postgresEnv;
    const result = await runCli('pms-backup', ['create'], { ...env, ...noCa, BACKUP_LOG_DIR: mkdtempSync(join(work, 'logs-')) });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /PMS_ERR_CONFIG/);
    assert.match(result.stderr, /POSTGRES_SSLMODE=verify-full needs POSTGRES_SSLROOTCERT/);
  });
});
