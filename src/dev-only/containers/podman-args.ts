import { join } from 'node:path';
import type { ContainerPlan, PodPlan } from './pod-plan.js';

export interface PodNetwork {
  readonly network: string;
  readonly ip: string;
  /** Service names (and their short forms) → the pod address behind them. */
  readonly hosts: ReadonlyArray<readonly [string, string]>;
}

export function podCreateArgs(pod: PodPlan, net: PodNetwork): string[] {
  return [
    'pod',
    'create',
    '--name',
    pod.name,
    '--network',
    net.network,
    '--ip',
    net.ip,
    ...net.hosts.flatMap(([name, ip]) => ['--add-host', `${name}:${ip}`]),
    ...Object.entries(pod.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
    '--label',
    `pms.test/namespace=${pod.namespace}`,
  ];
}

/**
 * `podman run` for one container of a pod, field by field from the plan. The root filesystem is
 * read-only without podman's usual tmpfs on /tmp, /run and /var/tmp (--read-only-tmpfs=false):
 * only what the manifest mounts is writable, as in the cluster.
 */
export function containerRunArgs(
  pod: PodPlan,
  container: ContainerPlan,
  volumeDirs: ReadonlyMap<string, string>,
  envFile: string,
): string[] {
  const args = ['run', '--pod', pod.name, '--name', `${pod.name}-${container.name}`, '--pull=never', '--env-file', envFile];
  if (container.user !== undefined)
    args.push('--user', container.group === undefined ? String(container.user) : `${container.user}:${container.group}`);
  for (const group of container.supplementalGroups) args.push('--group-add', String(group));
  if (container.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
  for (const cap of container.dropCapabilities) args.push('--cap-drop', cap);
  for (const cap of container.addCapabilities) args.push('--cap-add', cap);
  if (container.noNewPrivileges) args.push('--security-opt', 'no-new-privileges');
  if (container.memoryLimitBytes !== undefined)
    args.push('--memory', String(container.memoryLimitBytes), '--memory-swap', String(container.memoryLimitBytes));
  if (container.workingDir !== undefined) args.push('--workdir', container.workingDir);
  for (const mount of container.mounts) {
    const dir = volumeDirs.get(mount.volume);
    if (dir === undefined) throw new Error(`no host directory for volume ${mount.volume}`);
    const volume = pod.volumes.find((v) => v.name === mount.volume);
    // Secret and ConfigMap volumes are read-only whatever the mount says.
    const readOnly = mount.readOnly || volume?.kind === 'files';
    const source = mount.subPath === undefined ? dir : join(dir, mount.subPath);
    args.push('--volume', `${source}:${mount.mountPath}:${readOnly ? 'ro' : 'rw'}`);
  }
  // Kubernetes: command replaces ENTRYPOINT (and drops CMD); args replaces CMD.
  if (container.command !== undefined) args.push('--entrypoint', JSON.stringify(container.command));
  args.push(container.image, ...(container.args ?? []));
  return args;
}

/** The env file podman reads: one NAME=value per line (a value with a newline cannot be passed so). */
export function envFileText(container: ContainerPlan): string {
  return container.env
    .map(([name, value]) => {
      if (/[\r\n]/.test(value)) throw new Error(`${container.name}: env ${name} holds a newline, which an env file cannot carry`);
      return `${name}=${value}\n`;
    })
    .join('');
}
