import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool } from '../process/tool-process.js';

export interface ThrowawayTls {
  /** The CA certificate clients verify against (POSTGRES_SSLROOTCERT). */
  readonly caFile: string;
  /** The server's certificate and key (ssl_cert_file, ssl_key_file), mode 0600. */
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * A CA of its own and a server certificate for 127.0.0.1 and localhost (and `dnsNames`), made with openssl in a new
 * 0700 directory `dir`, so a throwaway cluster speaks verified TLS like production. The CA's
 * private key is deleted as soon as it has signed: nothing can be issued under this CA later,
 * and no key worth stealing stays on disk (the server's own key goes with the cluster).
 */
export async function makeThrowawayTls(dir: string, options: { dnsNames?: readonly string[] } = {}): Promise<ThrowawayTls> {
  mkdirSync(dir, { mode: 0o700 });
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const certFile = join(dir, 'server.crt');
  const ext = join(dir, 'server.ext');
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    await runTool('openssl', ['req', '-x509', ...ecKey, '-keyout', caKey, '-out', caFile, '-days', '7', '-subj', '/CN=pms throwaway CA']);
    await runTool('openssl', ['req', ...ecKey, '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost']);
    const names = ['IP:127.0.0.1', 'DNS:localhost', ...(options.dnsNames ?? []).map((n) => `DNS:${n}`)];
    writeFileSync(ext, `subjectAltName=${names.join(',')}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    await runTool('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caFile,
      '-CAkey',
      caKey,
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-out',
      certFile,
      '-days',
      '7',
      '-extfile',
      ext,
    ]);
  } finally {
    rmSync(caKey, { force: true });
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
  // PostgreSQL refuses a key file that others can read.
  chmodSync(keyFile, 0o600);
  chmodSync(certFile, 0o600);
  chmodSync(caFile, 0o644);
  return { caFile, certFile, keyFile };
}
