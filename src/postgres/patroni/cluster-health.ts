/**
 * The HA cluster as its members' Patroni REST APIs describe it (GET /cluster, /history, /patroni),
 * turned into doctor's and monitor's checks. Only reads: no endpoint that needs the REST API's
 * password is ever called.
 */

export interface ClusterMember {
  readonly name: string;
  /** leader, sync_standby, replica (Patroni 3.0's /cluster roles). */
  readonly role: string;
  readonly state: string;
  readonly timeline: number | undefined;
  /** WAL bytes the leader had written that the member has not replayed. */
  readonly lagBytes: number | undefined;
  /** Seconds the member's replay is behind the leader (0 when it has replayed everything); undefined when unknown. */
  readonly lagSeconds: number | undefined;
}

export interface ClusterFacts {
  /** The URL that answered /cluster. */
  readonly source: string;
  readonly members: readonly ClusterMember[];
  readonly leader: string | undefined;
  readonly timeline: number | undefined;
  readonly syncStandbys: number;
  /** The largest lagSeconds of a standby (undefined: no standby, or unknown). */
  readonly replicationLagSeconds: number | undefined;
  /** When the newest timeline began (the last failover or switchover), from /history. */
  readonly lastFailoverAt: string | undefined;
  readonly lastFailoverReason: string | undefined;
}

export interface ClusterCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

type Json = Record<string, unknown>;

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
  return response.json();
}

const isJson = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const numberOf = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

const xlogOf = (status: unknown): Json | undefined => (isJson(status) && isJson(status['xlog']) ? status['xlog'] : undefined);

/**
 * A standby's replay delay, from its own /patroni against the leader's: none when it has replayed
 * everything the leader had written, else the age of its last replayed commit. (Patroni's /cluster
 * lag counts WAL received, so a standby that receives but does not replay would look current.)
 */
function replayLag(leaderLocation: number | undefined, status: unknown, now: Date): { bytes?: number; seconds?: number } {
  const xlog = xlogOf(status);
  const replayedAt = numberOf(xlog?.['replayed_location']);
  if (leaderLocation === undefined || replayedAt === undefined) return {};
  const bytes = Math.max(0, leaderLocation - replayedAt);
  if (bytes === 0) return { bytes, seconds: 0 };
  const replayed = typeof xlog?.['replayed_timestamp'] === 'string' ? Date.parse(xlog['replayed_timestamp']) : Number.NaN;
  return Number.isNaN(replayed) ? { bytes } : { bytes, seconds: Math.max(0, (now.getTime() - replayed) / 1000) };
}

/** Reads the cluster from the first of `urls` that answers; throws when none does. */
export async function readClusterFacts(urls: readonly string[], options: { timeoutMs?: number; now?: Date } = {}): Promise<ClusterFacts> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const failures: string[] = [];
  for (const url of urls) {
    let cluster: unknown;
    try {
      cluster = await getJson(`${url}/cluster`, timeoutMs);
    } catch (error) {
      failures.push(`${url}: ${(error as Error).message}`);
      continue;
    }
    const now = options.now ?? new Date();
    const raw = isJson(cluster) && Array.isArray(cluster['members']) ? cluster['members'].filter(isJson) : [];
    const statusOf = (m: Json): Promise<unknown> =>
      typeof m['api_url'] === 'string' ? getJson(m['api_url'], timeoutMs).catch(() => undefined) : Promise.resolve(undefined);
    // The leader's position first: a standby read after it can only be further along.
    const leaderRaw = raw.find((m) => m['role'] === 'leader');
    const leaderLocation = leaderRaw ? numberOf(xlogOf(await statusOf(leaderRaw))?.['location']) : undefined;
    const members = await Promise.all(
      raw.map(async (m): Promise<ClusterMember> => {
        const role = String(m['role'] ?? '');
        const isStandby = role !== 'leader';
        const lag = isStandby ? replayLag(leaderLocation, await statusOf(m), now) : {};
        return {
          name: String(m['name'] ?? ''),
          role,
          state: String(m['state'] ?? ''),
          timeline: numberOf(m['timeline']),
          lagBytes: lag.bytes,
          lagSeconds: lag.seconds,
        };
      }),
    );
    const leader = members.find((m) => m.role === 'leader');
    const history = await getJson(`${url}/history`, timeoutMs).catch(() => []);
    const last = Array.isArray(history) ? history.at(-1) : undefined;
    const standbys = members.filter((m) => m.role !== 'leader');
    const lags = standbys.map((m) => m.lagSeconds);
    return {
      source: url,
      members,
      leader: leader?.name,
      timeline: leader?.timeline,
      syncStandbys: members.filter((m) => m.role === 'sync_standby' && isReplicating(m.state)).length,
      replicationLagSeconds: lags.length === 0 || lags.some((l) => l === undefined) ? undefined : Math.max(...(lags as number[])),
      lastFailoverAt: Array.isArray(last) && typeof last[3] === 'string' ? new Date(last[3]).toISOString() : undefined,
      lastFailoverReason: Array.isArray(last) && typeof last[2] === 'string' ? last[2] : undefined,
    };
  }
  throw new Error(`no Patroni REST API answered: ${failures.join('; ')}`);
}

/** Patroni 3.0 reports a standby that streams as "streaming" (earlier: "running"). */
function isReplicating(state: string): boolean {
  return state === 'streaming' || state === 'running';
}

function describeMember(m: ClusterMember): string {
  const lag =
    m.role === 'leader' ? '' : `, lag ${m.lagSeconds === undefined ? 'unknown' : `${m.lagSeconds.toFixed(1)} s`} / ${m.lagBytes ?? '?'} B`;
  return `${m.name} ${m.role} ${m.state} (timeline ${m.timeline ?? '?'}${lag})`;
}

/** doctor's and monitor's HA checks: a leader, a synchronous standby, lag within the limit, and the last failover. */
export function clusterChecks(facts: ClusterFacts, maxLagSeconds: number): ClusterCheck[] {
  const standbys = facts.members.filter((m) => m.role !== 'leader');
  const late = standbys.filter((m) => m.lagSeconds === undefined || m.lagSeconds > maxLagSeconds);
  return [
    {
      name: 'ha leader',
      ok: facts.leader !== undefined,
      detail:
        facts.leader !== undefined
          ? `leader ${facts.leader} on timeline ${facts.timeline ?? '?'}; ${facts.members.map(describeMember).join('; ')}`
          : `no leader: ${facts.members.map(describeMember).join('; ') || 'no members'} (from ${facts.source})`,
    },
    {
      name: 'ha sync standby',
      ok: facts.syncStandbys > 0,
      detail:
        facts.syncStandbys > 0
          ? `${facts.members
              .filter((m) => m.role === 'sync_standby')
              .map((m) => m.name)
              .join(', ')} confirms every commit`
          : 'no synchronous standby is streaming: a commit is on one node only, or (strict mode) writes wait',
    },
    {
      name: 'ha replication lag',
      ok: standbys.length > 0 && late.length === 0,
      detail:
        standbys.length === 0
          ? 'no standby'
          : late.length === 0
            ? `every standby within ${maxLagSeconds} s (BACKUP_MAX_REPLICATION_LAG_SECONDS); largest ${facts.replicationLagSeconds?.toFixed(1)} s`
            : `${late.map(describeMember).join('; ')}: over ${maxLagSeconds} s (BACKUP_MAX_REPLICATION_LAG_SECONDS) or unknown`,
    },
    {
      name: 'ha last failover',
      ok: true,
      detail:
        facts.lastFailoverAt !== undefined
          ? `timeline ${facts.timeline ?? '?'} began ${facts.lastFailoverAt}${facts.lastFailoverReason ? ` (${facts.lastFailoverReason})` : ''}`
          : `none recorded (timeline ${facts.timeline ?? '?'})`,
    },
  ];
}
