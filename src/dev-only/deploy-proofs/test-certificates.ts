import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool } from '../../process/tool-process.js';

export interface TestCertificates {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * A throwaway CA and a server certificate for localhost/127.0.0.1, made with openssl in `dir`
 * (tests only: the key is a fixture in a temporary directory).
 */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'tls.key');
  const csr = join(dir, 'tls.csr');
  const certFile = join(dir, 'tls.crt');
  const ext = join(dir, 'san.ext');
  await runTool('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-days',
    '2',
    '-subj',
    '/CN=pms-test-ca',
  ]);
  await runTool('openssl', [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csr,
    '-subj',
    '/CN=localhost',
  ]);
  writeFileSync(ext, 'subjectAltName=DNS:localhost,DNS:postgres.patient-monitoring.svc,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await runTool('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    caFile,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    certFile,
    '-days',
    '2',
    '-extfile',
    ext,
  ]);
  return { caFile, certFile, keyFile };
}
