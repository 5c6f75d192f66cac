import { secretVariables } from '../../config/secret-variables.js';
import { type Manifest, isRecord } from './manifest.js';
import { type PodTemplate, containersOf, field } from './pod-templates.js';
import { findPod } from './workload-environment.js';

type Json = Record<string, unknown>;

export const VERIFY_OWNER = 'CronJob/pms-backup-verify';
const SOCKET_SETTING = 'BACKUP_VERIFY_SERVER_SOCKET_DIR';

function list(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function uidOf(pod: PodTemplate, container: Json): unknown {
  return field(container, 'securityContext', 'runAsUser') ?? field(pod.spec, 'securityContext', 'runAsUser');
}

function envValue(container: Json, name: string): unknown {
  return list(container['env']).find((e) => e['name'] === name)?.['value'];
}

/**
 * What keeps the restored code in verify's throwaway server away from the key, as the verify
 * pod's manifest must say it (docs/architecture.md, "Verify's sandbox"): the server runs in a
 * native sidecar `verify-server` (an init container with restartPolicy Always) under another uid
 * than pms-backup, mounts nothing but emptyDirs, has no Secret-derived or secret-named variable,
 * and shares exactly one volume with pms-backup: the socket directory both name in
 * BACKUP_VERIFY_SERVER_SOCKET_DIR. The pod shares no process namespace (no /proc of the other).
 * Returns what is wrong, one sentence each; empty when all holds.
 */
export function verifyPodViolations(objects: readonly Manifest[]): string[] {
  const pod = findPod(objects, VERIFY_OWNER);
  const problems: string[] = [];
  const refs = containersOf(pod);
  const main = refs.find((r) => r.kind === 'containers' && r.name === 'pms-backup')?.container;
  const sidecar = refs.find((r) => r.name === 'verify-server');
  if (!main) return [`${VERIFY_OWNER}: no pms-backup container`];
  if (!sidecar) return [`${VERIFY_OWNER}: no verify-server container: the throwaway server would run as pms-backup's uid`];
  const server = sidecar.container;
  if (sidecar.kind !== 'initContainers' || server['restartPolicy'] !== 'Always')
    problems.push('verify-server must be a native sidecar (initContainers with restartPolicy: Always), running before and during verify');
  const command = [
    ...(Array.isArray(server['command']) ? server['command'] : []),
    ...(Array.isArray(server['args']) ? server['args'] : []),
  ].map(String);
  if (command[0] !== 'pms-backup' || command[1] !== 'verify-server')
    problems.push(`verify-server runs ${command.join(' ')}, not pms-backup verify-server`);
  const mainUid = uidOf(pod, main);
  const serverUid = uidOf(pod, server);
  if (serverUid === undefined || serverUid === mainUid)
    problems.push(`verify-server runs as uid ${String(serverUid)}, the same as pms-backup (${String(mainUid)}): it could read the key`);
  const client = command[command.indexOf('--client-user') + 1];
  if (command.indexOf('--client-user') < 0 || client !== String(mainUid))
    problems.push(`verify-server admits --client-user ${String(client)}, but pms-backup runs as uid ${String(mainUid)}`);
  if (pod.spec['shareProcessNamespace'] === true) problems.push('shareProcessNamespace: the server would see /proc of pms-backup');

  const volumes = new Map(list(pod.spec['volumes']).map((v) => [String(v['name']), v]));
  const serverMounts = list(server['volumeMounts']);
  for (const mount of serverMounts) {
    const volume = volumes.get(String(mount['name']));
    if (!volume || !isRecord(volume['emptyDir'])) problems.push(`verify-server mounts ${String(mount['name'])}, which is not an emptyDir`);
  }
  if (list(server['envFrom']).length > 0) problems.push('verify-server takes envFrom: its environment must be spelled out');
  for (const entry of list(server['env'])) {
    if (isRecord(field(entry, 'valueFrom', 'secretKeyRef'))) problems.push(`verify-server's ${String(entry['name'])} comes from a Secret`);
  }
  const named = secretVariables(Object.fromEntries(list(server['env']).map((e) => [String(e['name']), 'set'])));
  if (named.length > 0) problems.push(`verify-server's environment names secrets: ${named.join(', ')}`);

  const mainMounts = new Map(list(main['volumeMounts']).map((m) => [String(m['name']), String(m['mountPath'])]));
  const shared = serverMounts.filter((m) => mainMounts.has(String(m['name'])));
  if (shared.length !== 1) {
    problems.push(
      `verify-server and pms-backup share ${shared.length} volume(s) (${shared.map((m) => String(m['name'])).join(', ')}): exactly the socket directory`,
    );
  } else {
    const [socket] = shared;
    const serverPath = String(socket?.['mountPath']);
    if (mainMounts.get(String(socket?.['name'])) !== serverPath)
      problems.push('the socket volume is mounted at different paths in the two containers');
    if (envValue(main, SOCKET_SETTING) !== serverPath)
      problems.push(`pms-backup's ${SOCKET_SETTING} is not the shared socket directory ${serverPath}`);
    if (envValue(server, SOCKET_SETTING) !== serverPath)
      problems.push(`verify-server's ${SOCKET_SETTING} is not the shared socket directory ${serverPath}`);
  }
  return problems;
}
