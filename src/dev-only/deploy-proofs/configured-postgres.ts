import { appendFileSync, chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ThrowawayCluster, startThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import { runTool } from '../../process/tool-process.js';
import type { Manifest } from './manifest.js';
import { makeThrowawayTls } from '../../postgres/throwaway-tls.js';
import { findPod, materialiseContainer } from './workload-environment.js';

export interface ConfiguredPostgres {
  readonly cluster: ThrowawayCluster;
  /** The CA that signed the server certificate (what clients verify against). */
  readonly caFile: string;
  /** The postgres-tls Secret the test made (cert-manager's job in a cluster). */
  readonly tlsSecret: Manifest;
  destroy(): Promise<void>;
}

export interface ConfiguredPostgresOptions {
  /** SQL run while the throwaway cluster still trusts its socket, before our pg_hba.conf applies. */
  readonly prepareSql?: string;
  /** Run the ConfigMap's /docker-entrypoint-initdb.d scripts, as the image's entrypoint would. */
  readonly runInitScripts?: boolean;
  /**
   * Give the server the postgres container's environment and a `pms-backup` on PATH, so
   * archive_command (`pms-backup wal-push %p`) really archives, as in the image.
   */
  readonly archiving?: { readonly pmsBackupBin: string };
  readonly envOverrides?: Readonly<Record<string, string>>;
  readonly secretOverrides?: Readonly<Record<string, string>>;
}

function b64(path: string): string {
  return readFileSync(path).toString('base64');
}

async function ids(user: string): Promise<{ uid: number; gid: number }> {
  return {
    uid: Number((await runTool('id', ['-u', user])).stdout.trim()),
    gid: Number((await runTool('id', ['-g', user])).stdout.trim()),
  };
}

/**
 * Starts a real PostgreSQL 15 configured by the rendered StatefulSet's postgres container: its
 * postgresql.conf and pg_hba.conf (from the ConfigMap, via the same mounts), a server certificate
 * made here with openssl in place of cert-manager's, and optionally its init scripts. Container
 * paths inside the configuration are mapped to a temporary directory; nothing else changes.
 */
export async function startConfiguredPostgres(
  rendered: readonly Manifest[],
  options: ConfiguredPostgresOptions = {},
): Promise<ConfiguredPostgres> {
  const root = mkdtempSync(join(tmpdir(), 'pms-pgconf-'));
  // The server runs as the postgres OS user: it must be able to reach the mapped files.
  chmodSync(root, 0o755);
  let cluster: ThrowawayCluster | undefined;
  try {
    // The certificate also names the Service the manifests connect to (verify-full).
    const certs = await makeThrowawayTls(join(root, 'certs'), { dnsNames: ['postgres.patient-monitoring.svc'] });
    const tlsSecret: Manifest = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'postgres-tls', namespace: 'patient-monitoring' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(certs.certFile), 'tls.key': b64(certs.keyFile), 'ca.crt': b64(certs.caFile) },
    };
    const objects = [...rendered, tlsSecret];
    const container = materialiseContainer(objects, findPod(objects, 'StatefulSet/postgres'), 'postgres', {
      root: join(root, 'pod'),
      worldReadable: true,
      ...(options.envOverrides ? { envOverrides: options.envOverrides } : {}),
      ...(options.secretOverrides ? { secretOverrides: options.secretOverrides } : {}),
    });
    let serverEnv: NodeJS.ProcessEnv | undefined;
    if (options.archiving) {
      // The image links pms-backup onto PATH; here a wrapper does, for the server's OS user.
      const binDir = join(root, 'bin');
      mkdirSync(binDir, { mode: 0o755 });
      writeFileSync(join(binDir, 'pms-backup'), `#!/bin/sh\nexec '${process.execPath}' '${options.archiving.pmsBackupBin}' "$@"\n`, {
        mode: 0o755,
      });
      serverEnv = { ...container.env, PATH: `${binDir}:${process.env['PATH'] ?? ''}` };
    }
    // Its TLS is the rendered postgresql.conf's, with the certificate made above.
    cluster = await startThrowawayCluster({ tls: false, ...(serverEnv ? { serverEnv } : {}) });
    const started = cluster;
    const owner = started.osUser ? await ids(started.osUser) : undefined;
    // In the pod, fsGroup makes the volumes the server's; here they are handed to its OS user.
    if (owner) for (const path of container.paths.values()) chownSync(path, owner.uid, owner.gid);
    // PostgreSQL refuses a key file others can read; in the pod fsGroup and defaultMode do this.
    const tlsDir = container.mapPath('/etc/postgresql/tls');
    for (const file of readdirSync(tlsDir)) {
      if (owner) chownSync(join(tlsDir, file), owner.uid, owner.gid);
      chmodSync(join(tlsDir, file), 0o600);
    }
    const mapQuoted = (text: string): string => text.replace(/'(\/[^']*)'/g, (_m, path: string) => `'${container.mapPath(path)}'`);
    const confFile = container.mapPath('/etc/postgresql/postgresql.conf');
    writeFileSync(confFile, mapQuoted(readFileSync(confFile, 'utf8')));

    await started.psql(`CREATE DATABASE ${container.env['POSTGRES_DB'] ?? 'patient_telemetry'};${options.prepareSql ?? ''}`);
    await started.stop();
    appendFileSync(join(started.dataDir, 'postgresql.conf'), `include '${confFile}'\n`);
    await started.start();

    if (options.runInitScripts) {
      const initDir = container.mapPath('/docker-entrypoint-initdb.d');
      for (const script of readdirSync(initDir)
        .filter((f) => f.endsWith('.sh'))
        .sort()) {
        const text = readFileSync(join(initDir, script), 'utf8').replace(/\/run\/secrets\/[\w./-]+/g, (path) => container.mapPath(path));
        const mapped = join(initDir, `mapped-${script}`);
        writeFileSync(mapped, text, { mode: 0o755 });
        // As the image's entrypoint does: over the Unix socket, as the postgres OS user (peer).
        await runTool('sh', [mapped], {
          runAs: started.osUser,
          env: {
            PATH: `${started.binDir}:${process.env['PATH'] ?? ''}`,
            PGHOST: started.socketDir,
            PGPORT: String(started.port),
            POSTGRES_USER: container.env['POSTGRES_USER'] ?? 'postgres',
            POSTGRES_DB: container.env['POSTGRES_DB'] ?? 'patient_telemetry',
          },
        });
      }
    }
    return {
      cluster: started,
      caFile: certs.caFile,
      tlsSecret,
      async destroy() {
        try {
          await started.destroy();
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    await cluster?.destroy().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}
