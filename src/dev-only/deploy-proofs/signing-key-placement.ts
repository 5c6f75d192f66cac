import { type Manifest, describe, isRecord } from './manifest.js';
import { type PodTemplate, containersOf, podTemplates } from './pod-templates.js';

/**
 * The two signing keys and who holds them: the backup jobs' key signs backups, verification and
 * audit records; the database server's own WAL key signs what wal-push archives. A leak of one
 * must not forge what the other signs, so each lives in its own Secret and is mounted only into
 * the containers that sign with it.
 */
export const SIGNING_SECRETS = { jobs: 'pms-backup-signing', wal: 'pms-wal-signing' } as const;
export type SigningRole = keyof typeof SIGNING_SECRETS;
/** Public keys only (every consumer's BACKUP_TRUSTED_SIGNERS_FILE). */
export const TRUSTED_SIGNERS_CONFIGMAP = 'pms-trusted-signers';

/** One pms-backup run a container makes: its CronJob command, or PostgreSQL's archive_command. */
export interface Invocation {
  readonly owner: string;
  readonly container: string;
  /** The arguments after `pms-backup`. */
  readonly argv: readonly string[];
}

/** What an invocation's command refuses to start without, as the program itself reports it. */
export interface SigningNeeds {
  readonly signing: boolean;
  readonly trust: boolean;
}

/** The key an invocation signs with: the server's WAL key for wal-push, the jobs' key otherwise. */
export function signingRoleOf(invocation: Invocation): SigningRole {
  return invocation.argv[0] === 'wal-push' ? 'wal' : 'jobs';
}

/** `'pms-backup …'`, or a shell check ending in `; exec pms-backup …` (the shell-first archive_command, archive-command.ts). */
const SERVER_COMMANDS = /^(archive_command|restore_command)\s*=\s*'(?:[^']*;\s*exec\s+)?pms-backup ([^']*)'\s*$/gm;
/**
 * What PostgreSQL substitutes for %p / %f (the shell-first archive_command passes %p on as "$p"):
 * any WAL file name will do for the command's needs.
 */
const WAL_PLACEHOLDERS: Readonly<Record<string, string>> = {
  '%p': 'pg_wal/000000010000000000000001',
  '"$p"': 'pg_wal/000000010000000000000001',
  '%f': '000000010000000000000001',
};

function baseName(name: string): string {
  return name.replace(/-[a-z0-9]{10}$/, '');
}

function volumesOf(pod: PodTemplate): Map<string, Record<string, unknown>> {
  const volumes = new Map<string, Record<string, unknown>>();
  for (const v of Array.isArray(pod.spec['volumes']) ? pod.spec['volumes'] : []) if (isRecord(v)) volumes.set(String(v['name']), v);
  return volumes;
}

function mountsOf(container: Record<string, unknown>): Array<Record<string, unknown>> {
  return (Array.isArray(container['volumeMounts']) ? container['volumeMounts'] : []).filter(isRecord);
}

function envOf(container: Record<string, unknown>): Map<string, Record<string, unknown>> {
  const env = new Map<string, Record<string, unknown>>();
  for (const e of Array.isArray(container['env']) ? container['env'] : []) if (isRecord(e)) env.set(String(e['name']), e);
  return env;
}

/** Every pms-backup run in the rendered pods: container commands, and the server's archive/restore commands. */
export function pmsBackupInvocations(objects: readonly Manifest[]): Invocation[] {
  const invocations: Invocation[] = [];
  for (const pod of podTemplates(objects)) {
    const volumes = volumesOf(pod);
    for (const { name, container } of containersOf(pod)) {
      const command = [
        ...(Array.isArray(container['command']) ? container['command'] : []),
        ...(Array.isArray(container['args']) ? container['args'] : []),
      ].map(String);
      if (command[0] === 'pms-backup') invocations.push({ owner: pod.owner, container: name, argv: command.slice(1) });
      // A server configured by a mounted postgresql.conf runs what its archive_command says.
      for (const mount of mountsOf(container)) {
        const configMap = volumes.get(String(mount['name']))?.['configMap'];
        if (!isRecord(configMap)) continue;
        const data = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === String(configMap['name']))?.['data'];
        const conf = isRecord(data) ? data['postgresql.conf'] : undefined;
        if (typeof conf !== 'string' || (typeof mount['subPath'] === 'string' && mount['subPath'] !== 'postgresql.conf')) continue;
        for (const match of conf.matchAll(SERVER_COMMANDS)) {
          const argv = (match[2] ?? '').split(/\s+/).map((a) => WAL_PLACEHOLDERS[a] ?? a);
          if (!invocations.some((i) => i.owner === pod.owner && i.container === name && i.argv.join(' ') === argv.join(' ')))
            invocations.push({ owner: pod.owner, container: name, argv });
        }
      }
    }
  }
  return invocations;
}

interface Source {
  readonly kind: 'Secret' | 'ConfigMap';
  readonly name: string;
  readonly key: string;
}

/** Which Secret or ConfigMap key a file path in the container comes from (longest mount first). */
function sourceOfPath(pod: PodTemplate, container: Record<string, unknown>, path: string): Source | undefined {
  const volumes = volumesOf(pod);
  const mounts = mountsOf(container)
    .map((m) => ({ mountPath: String(m['mountPath']), name: String(m['name']), subPath: m['subPath'] }))
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length);
  const mount = mounts[0];
  if (!mount) return undefined;
  const volume = volumes.get(mount.name);
  const secret = isRecord(volume?.['secret']) ? volume['secret'] : undefined;
  const configMap = isRecord(volume?.['configMap']) ? volume['configMap'] : undefined;
  const spec = secret ?? configMap;
  if (!spec) return undefined;
  const relative = typeof mount.subPath === 'string' ? mount.subPath : path.slice(mount.mountPath.length + 1);
  const items = Array.isArray(spec['items']) ? spec['items'].filter(isRecord) : undefined;
  const key = items ? items.find((i) => String(i['path']) === relative)?.['key'] : relative;
  if (key === undefined) return undefined;
  return {
    kind: secret ? 'Secret' : 'ConfigMap',
    name: baseName(String(secret ? secret['secretName'] : configMap?.['name'])),
    key: String(key),
  };
}

function roleOfSecret(name: string): SigningRole | undefined {
  return (Object.keys(SIGNING_SECRETS) as SigningRole[]).find((role) => SIGNING_SECRETS[role] === baseName(name));
}

function sourceText(source: Source | undefined): string {
  return source ? `${source.kind} ${source.name} key ${source.key}` : 'no mounted Secret or ConfigMap';
}

/**
 * Each container gets exactly the signing material its pms-backup commands need, and no other:
 * BACKUP_SIGNING_KEY_FILE (and its passphrase) from the Secret of the key it signs with, only if
 * its command signs; BACKUP_TRUSTED_SIGNERS_FILE from the trusted signers ConfigMap exactly when
 * its command checks signatures; a signing Secret mounted, or referenced anywhere in the pod,
 * only where that key is used. `needsOf` says what each command needs (from the program).
 */
export function keyPlacementViolations(objects: readonly Manifest[], needsOf: (invocation: Invocation) => SigningNeeds): string[] {
  const found: string[] = [];
  const invocations = pmsBackupInvocations(objects);
  for (const pod of podTemplates(objects)) {
    const volumes = volumesOf(pod);
    const podRoles = new Set<SigningRole>();
    for (const { name, container } of containersOf(pod)) {
      const where = `${pod.owner} container ${name}`;
      const own = invocations.filter((i) => i.owner === pod.owner && i.container === name);
      const roles = new Set(own.filter((i) => needsOf(i).signing).map(signingRoleOf));
      const trust = own.some((i) => needsOf(i).trust);
      for (const role of roles) podRoles.add(role);
      const env = envOf(container);
      const pathOf = (variable: string): string | undefined => {
        const entry = env.get(variable);
        if (entry === undefined) return undefined;
        return typeof entry['value'] === 'string' ? entry['value'] : '';
      };

      const keyFile = pathOf('BACKUP_SIGNING_KEY_FILE');
      const passphraseFile = pathOf('BACKUP_SIGNING_PASSPHRASE_FILE');
      if (roles.size > 1) found.push(`${where}: its commands would sign with both the jobs' and the WAL key; give each its own container`);
      const [role] = [...roles];
      if (role === undefined) {
        if (keyFile !== undefined) found.push(`${where}: BACKUP_SIGNING_KEY_FILE is set, but its command signs nothing`);
        if (passphraseFile !== undefined) found.push(`${where}: BACKUP_SIGNING_PASSPHRASE_FILE is set, but its command signs nothing`);
      } else {
        const secret = SIGNING_SECRETS[role];
        if (keyFile === undefined) found.push(`${where}: its command signs but BACKUP_SIGNING_KEY_FILE is not set`);
        else {
          const source = sourceOfPath(pod, container, keyFile);
          if (source?.kind !== 'Secret' || source.name !== secret || source.key !== 'signing-key')
            found.push(
              `${where}: BACKUP_SIGNING_KEY_FILE must be key signing-key of Secret ${secret} (the ${role} key), not ${sourceText(source)}`,
            );
        }
        if (passphraseFile !== undefined) {
          const source = sourceOfPath(pod, container, passphraseFile);
          if (source?.kind !== 'Secret' || source.name !== secret || source.key !== 'signing-passphrase')
            found.push(
              `${where}: BACKUP_SIGNING_PASSPHRASE_FILE must be key signing-passphrase of Secret ${secret}, not ${sourceText(source)}`,
            );
        }
      }

      const signersFile = pathOf('BACKUP_TRUSTED_SIGNERS_FILE');
      if (trust && signersFile === undefined)
        found.push(`${where}: its command checks signatures but BACKUP_TRUSTED_SIGNERS_FILE is not set`);
      if (!trust && signersFile !== undefined)
        found.push(`${where}: BACKUP_TRUSTED_SIGNERS_FILE is set, but its command checks no signature`);
      if (trust && signersFile !== undefined) {
        const source = sourceOfPath(pod, container, signersFile);
        if (source?.kind !== 'ConfigMap' || source.name !== TRUSTED_SIGNERS_CONFIGMAP)
          found.push(
            `${where}: BACKUP_TRUSTED_SIGNERS_FILE must come from ConfigMap ${TRUSTED_SIGNERS_CONFIGMAP}, not ${sourceText(source)}`,
          );
      }

      for (const mount of mountsOf(container)) {
        const secret = volumes.get(String(mount['name']))?.['secret'];
        const mounted = isRecord(secret) ? roleOfSecret(String(secret['secretName'])) : undefined;
        if (mounted !== undefined && !roles.has(mounted))
          found.push(`${where}: mounts the ${mounted} signing key (${SIGNING_SECRETS[mounted]}) but does not sign with it`);
      }
      for (const entry of env.values()) {
        const ref = isRecord(entry['valueFrom']) ? entry['valueFrom']['secretKeyRef'] : undefined;
        if (isRecord(ref) && roleOfSecret(String(ref['name'])) !== undefined)
          found.push(`${where}: ${String(entry['name'])} puts a signing key into the environment; mount it as a file`);
      }
      for (const from of Array.isArray(container['envFrom']) ? container['envFrom'].filter(isRecord) : []) {
        const ref = from['secretRef'];
        if (isRecord(ref) && roleOfSecret(String(ref['name'])) !== undefined)
          found.push(`${where}: envFrom puts a signing key into the environment; mount it as a file`);
      }
    }
    // A volume nobody mounts is still a key the pod holds.
    for (const volume of volumes.values()) {
      const names = [
        isRecord(volume['secret']) ? String(volume['secret']['secretName']) : undefined,
        ...(isRecord(volume['projected']) && Array.isArray(volume['projected']['sources'])
          ? volume['projected']['sources'].filter(isRecord).map((s) => (isRecord(s['secret']) ? String(s['secret']['name']) : undefined))
          : []),
      ];
      for (const name of names) {
        const role = name === undefined ? undefined : roleOfSecret(name);
        if (role !== undefined && !podRoles.has(role))
          found.push(
            `${pod.owner}: volume ${String(volume['name'])} holds the ${role} signing key, which no container of the pod signs with`,
          );
      }
    }
  }
  return found;
}

/** The trusted signers as rendered: armored public keys only, never a secret key. */
export function trustedSignersText(objects: readonly Manifest[]): string {
  const configMap = objects.find((o) => o.kind === 'ConfigMap' && baseName(o.metadata.name) === TRUSTED_SIGNERS_CONFIGMAP);
  if (!configMap) throw new Error(`ConfigMap ${TRUSTED_SIGNERS_CONFIGMAP} is not rendered`);
  const data = isRecord(configMap['data']) ? configMap['data'] : {};
  const text = data['trusted-signers.asc'];
  if (typeof text !== 'string') throw new Error(`${describe(configMap)} has no trusted-signers.asc`);
  return text;
}
