import { type PodTemplate, containersOf, field } from './pod-templates.js';
import { isRecord } from './manifest.js';

/**
 * Pod Security Standards, "restricted" profile (Kubernetes v1.32, which includes every
 * "baseline" check), as https://kubernetes.io/docs/concepts/security/pod-security-standards/
 * lists them. Each finding names the check so a failure says which rule broke.
 */
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const RESTRICTED_VOLUME_TYPES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);
const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);
const SECCOMP_ALLOWED = new Set(['RuntimeDefault', 'Localhost']);

export function podSecurityViolations(pod: PodTemplate): string[] {
  const found: string[] = [];
  const v = (check: string, where: string, message: string): void => {
    found.push(`${pod.owner} ${where}: [${check}] ${message}`);
  };
  const spec = pod.spec;
  const podSc = isRecord(spec['securityContext']) ? spec['securityContext'] : {};
  const containers = containersOf(pod);

  // Baseline: host namespaces and HostProcess.
  for (const key of ['hostNetwork', 'hostPID', 'hostIPC'] as const) {
    if (spec[key] === true) v('host-namespaces', 'pod', `${key} must not be true`);
  }
  if (field(podSc, 'windowsOptions', 'hostProcess') === true) v('host-process', 'pod', 'windowsOptions.hostProcess must not be true');

  // Baseline: hostPath volumes; restricted: only the allowed volume types.
  const volumes = Array.isArray(spec['volumes']) ? spec['volumes'] : [];
  for (const volume of volumes) {
    if (!isRecord(volume)) continue;
    const types = Object.keys(volume).filter((k) => k !== 'name');
    if (types.includes('hostPath')) v('host-path-volumes', `volume ${String(volume['name'])}`, 'hostPath volumes are forbidden');
    for (const type of types) {
      if (!RESTRICTED_VOLUME_TYPES.has(type)) v('volume-types', `volume ${String(volume['name'])}`, `volume type ${type} is not allowed`);
    }
  }

  // Baseline: sysctls.
  const sysctls = Array.isArray(podSc['sysctls']) ? podSc['sysctls'] : [];
  for (const sysctl of sysctls) {
    const name = String(field(sysctl, 'name'));
    if (!SAFE_SYSCTLS.has(name)) v('sysctls', 'pod', `sysctl ${name} is not in the safe set`);
  }

  // Baseline: AppArmor (annotations and field) and SELinux, pod level.
  for (const [key, value] of Object.entries(pod.annotations)) {
    if (
      key.startsWith('container.apparmor.security.beta.kubernetes.io/') &&
      value !== 'runtime/default' &&
      !value.startsWith('localhost/')
    ) {
      v('apparmor', 'pod', `${key}=${value} is not allowed`);
    }
  }
  const checkAppArmorAndSelinux = (sc: Record<string, unknown>, where: string): void => {
    const apparmor = field(sc, 'appArmorProfile', 'type');
    if (apparmor !== undefined && apparmor !== 'RuntimeDefault' && apparmor !== 'Localhost')
      v('apparmor', where, `appArmorProfile.type ${String(apparmor)} is not allowed`);
    const selinux = sc['seLinuxOptions'];
    if (isRecord(selinux)) {
      if (selinux['type'] !== undefined && !SELINUX_TYPES.has(String(selinux['type'])))
        v('selinux', where, `seLinuxOptions.type ${String(selinux['type'])} is not allowed`);
      if (selinux['user'] !== undefined) v('selinux', where, 'seLinuxOptions.user must not be set');
      if (selinux['role'] !== undefined) v('selinux', where, 'seLinuxOptions.role must not be set');
    }
  };
  checkAppArmorAndSelinux(podSc, 'pod');

  // Restricted: seccomp (pod-level default or every container), never Unconfined.
  const podSeccomp = field(podSc, 'seccompProfile', 'type');
  if (podSeccomp !== undefined && !SECCOMP_ALLOWED.has(String(podSeccomp)))
    v('seccomp', 'pod', `seccompProfile.type ${String(podSeccomp)} is not allowed`);
  // Restricted: non-root.
  const podNonRoot = podSc['runAsNonRoot'];
  if (podSc['runAsUser'] === 0) v('run-as-user', 'pod', 'runAsUser must not be 0');

  if (containers.length === 0) v('containers', 'pod', 'has no containers');
  for (const { name, kind, container } of containers) {
    const where = `${kind === 'containers' ? 'container' : kind.replace(/s$/, '')} ${name}`;
    const sc = isRecord(container['securityContext']) ? container['securityContext'] : {};
    if (sc['privileged'] === true) v('privileged', where, 'privileged must not be true');
    if (field(sc, 'windowsOptions', 'hostProcess') === true) v('host-process', where, 'windowsOptions.hostProcess must not be true');
    if (sc['procMount'] !== undefined && sc['procMount'] !== 'Default')
      v('proc-mount', where, `procMount ${String(sc['procMount'])} is not allowed`);
    const ports = Array.isArray(container['ports']) ? container['ports'] : [];
    for (const port of ports) {
      const hostPort = field(port, 'hostPort');
      if (hostPort !== undefined && hostPort !== 0) v('host-ports', where, `hostPort ${String(hostPort)} is forbidden`);
    }
    checkAppArmorAndSelinux(sc, where);
    if (sc['allowPrivilegeEscalation'] !== false) v('privilege-escalation', where, 'allowPrivilegeEscalation must be false');
    const nonRoot = sc['runAsNonRoot'];
    if (nonRoot === false || (nonRoot === undefined && podNonRoot !== true))
      v('run-as-non-root', where, 'runAsNonRoot must be true (on the pod or the container)');
    if (sc['runAsUser'] === 0) v('run-as-user', where, 'runAsUser must not be 0');
    const seccomp = field(sc, 'seccompProfile', 'type');
    if (seccomp !== undefined && !SECCOMP_ALLOWED.has(String(seccomp)))
      v('seccomp', where, `seccompProfile.type ${String(seccomp)} is not allowed`);
    if (seccomp === undefined && podSeccomp === undefined)
      v('seccomp', where, 'seccompProfile.type must be RuntimeDefault or Localhost (on the pod or the container)');
    const drop = field(sc, 'capabilities', 'drop');
    if (!Array.isArray(drop) || !drop.includes('ALL')) v('capabilities', where, 'capabilities.drop must include ALL');
    const add = field(sc, 'capabilities', 'add');
    if (Array.isArray(add)) {
      for (const cap of add) if (cap !== 'NET_BIND_SERVICE') v('capabilities', where, `capability ${String(cap)} may not be added`);
    }
  }
  return found;
}
