import type { ThrowawayCluster } from '../../postgres/throwaway-cluster.js';
import type { Check } from '../../repository/verification-record.js';

/** The record of how the throwaway server was kept apart, for whoever reads the verification. */
export function sandboxCheck(cluster: ThrowawayCluster, extra?: string): Check {
  const isolation = cluster.isolation;
  if (!isolation) return { name: 'sandbox', ok: false, detail: 'the throwaway server was not started as a sandbox' };
  const parts = [
    `PostgreSQL ran as OS user ${isolation.osUser} (uid ${isolation.uid})`,
    isolation.network === 'own network namespace' ? 'in its own network, PID and mount namespaces (no network)' : 'sharing the network',
    'on a Unix socket in a 0700 directory only, peer authentication',
    'with no environment of pms-backup',
    `none of the ${isolation.protectedFiles} secret file(s) readable by it`,
  ];
  if (extra) parts.push(extra);
  return { name: 'sandbox', ok: true, detail: parts.join(', ') };
}
