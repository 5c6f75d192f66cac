import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { PodPlan, VolumePlan } from './pod-plan.js';

/**
 * Writes a pod's volumes on the host as the kubelet would lay them out, returning each volume's
 * host directory:
 * - Secret/ConfigMap files: root-owned, with their item mode or defaultMode; with an fsGroup the
 *   group is the fsGroup and group read is added (the kubelet's ownership rule for read-only volumes);
 * - emptyDir: a new 0777 directory per pod (never shared between pods), setgid fsGroup; with
 *   medium Memory a tmpfs of its sizeLimit mounted there, so what the pod writes stays in memory
 *   and a write past the limit fails with ENOSPC, as in the cluster (unmountVolumes undoes it);
 * - PersistentVolumeClaim: one directory per claim name, shared by every pod that mounts it,
 *   group-writable by the fsGroup (0775 + setgid, as the kubelet leaves a volume's root).
 */
export function writePodVolumes(pod: PodPlan, runDir: string): ReadonlyMap<string, string> {
  const dirs = new Map<string, string>();
  const group = pod.fsGroup;
  for (const volume of pod.volumes) dirs.set(volume.name, writeVolume(volume, pod, runDir, group));
  return dirs;
}

function writeVolume(volume: VolumePlan, pod: PodPlan, runDir: string, group: number | undefined): string {
  switch (volume.kind) {
    case 'files': {
      const dir = join(runDir, 'pods', pod.name, 'volumes', volume.name);
      mkdirSync(dir, { recursive: true });
      chownSync(dir, 0, group ?? 0);
      chmodSync(dir, group === undefined ? 0o755 : 0o2755);
      for (const file of volume.files) {
        const path = join(dir, file.path);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, file.content);
        chownSync(path, 0, group ?? 0);
        chmodSync(path, group === undefined ? file.mode : file.mode | 0o440);
      }
      return dir;
    }
    case 'emptyDir': {
      const dir = join(runDir, 'pods', pod.name, 'volumes', volume.name);
      mkdirSync(dir, { recursive: true });
      if (volume.memoryBytes !== undefined) execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${volume.memoryBytes}`, 'tmpfs', dir]);
      chownSync(dir, 0, group ?? 0);
      chmodSync(dir, group === undefined ? 0o777 : 0o2777);
      return dir;
    }
    case 'hostPath':
      return volume.path;
    case 'claim': {
      const dir = join(runDir, 'claims', volume.claim);
      mkdirSync(dir, { recursive: true });
      if (group !== undefined) {
        chownSync(dir, 0, group);
        chmodSync(dir, 0o2775);
      }
      return dir;
    }
  }
}

/** Unmounts every memory emptyDir under runDir (deepest first), so the directory can be removed. */
export function unmountVolumes(runDir: string): void {
  const prefix = `${runDir.replace(/\/+$/, '')}/`;
  const mounted = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    // /proc/self/mounts escapes spaces and the like as octal; the harness's paths have none.
    .filter((path) => path.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
  for (const path of mounted) execFileSync('umount', [path]);
}
