import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildCommandRegistry } from '../../metrics/backup-metrics.js';
import { type PatroniCluster, startPatroniCluster } from '../../testing/patroni-harness.js';
import { type ClusterFacts, clusterChecks, readClusterFacts } from './cluster-health.js';

/**
 * doctor's and monitor's HA view (BACKUP_PATRONI_URLS) against a real three-member Patroni
 * cluster (src/testing/patroni-harness.ts): healthy, a standby whose replay is paused, a failover
 * by SIGKILL of the leader, and a cluster left with no standby at all. One cluster for the file.
 */
let cluster: PatroniCluster;
const urls = (): string[] => cluster.members.map((m) => m.restApiUrl);
const byName = (checks: ReturnType<typeof clusterChecks>): Record<string, { ok: boolean; detail: string }> =>
  Object.fromEntries(checks.map((c) => [c.name, c]));

before(async () => {
  cluster = await startPatroniCluster();
});
after(async () => {
  await cluster?.stop();
});

async function until(what: string, condition: () => Promise<boolean>, seconds = 60): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

describe('the HA cluster as doctor and monitor see it', () => {
  let first: ClusterFacts;

  test('healthy: a leader, one synchronous standby, no lag, timeline 1 and no failover yet; every check passes', async () => {
    await cluster.waitForHealthy();
    await cluster.psql(await cluster.leader(), 'CREATE TABLE ha_probe (n int); INSERT INTO ha_probe VALUES (1)');
    await until('the standbys to replay the probe', async () => (await readClusterFacts(urls())).replicationLagSeconds === 0);
    first = await readClusterFacts(urls());
    assert.equal(first.leader, (await cluster.leader()).name);
    assert.equal(first.members.length, 3);
    assert.equal(first.syncStandbys, 1);
    assert.equal(first.timeline, 1);
    assert.equal(first.lastFailoverAt, undefined);
    const checks = byName(clusterChecks(first, 30));
    for (const name of ['ha leader', 'ha sync standby', 'ha replication lag', 'ha last failover'])
      assert.equal(checks[name]?.ok, true, name);
    assert.match(checks['ha leader']?.detail ?? '', /timeline 1/);
  });

  test('a URL that does not answer is skipped; when none answers the view says so', async () => {
    const facts = await readClusterFacts(['http://127.0.0.1:9', ...urls()], { timeoutMs: 1000 });
    assert.equal(facts.source, urls()[0]);
    await assert.rejects(readClusterFacts(['http://127.0.0.1:9'], { timeoutMs: 1000 }), /no Patroni REST API answered/);
  });

  test('a standby whose replay is stopped (SIGSTOP of its startup process) while the leader writes fails the lag check; resumed, it passes', async () => {
    const status = await cluster.status();
    const replica = cluster.members.find((m) => m.name === status.find((s) => s.role === 'replica')?.name);
    assert.ok(replica);
    // Patroni resumes a pg_wal_replay_pause() at once, so stop the process that replays instead
    // (a child of the member's postmaster, which the harness started).
    const startup = Number(await cluster.psql(replica, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'"));
    assert.ok(startup > 0);
    process.kill(startup, 'SIGSTOP');
    try {
      await sleep(1500);
      await cluster.psql(await cluster.leader(), 'INSERT INTO ha_probe VALUES (2)');
      await until(
        'Patroni to see the replica behind',
        async () => ((await readClusterFacts(urls())).members.find((m) => m.name === replica.name)?.lagBytes ?? 0) > 0,
      );
      const facts = await readClusterFacts(urls());
      const late = facts.members.find((m) => m.name === replica.name);
      assert.ok(late?.lagSeconds !== undefined && late.lagSeconds >= 1, JSON.stringify(late));
      const checks = byName(clusterChecks(facts, 1));
      assert.equal(checks['ha replication lag']?.ok, false);
      assert.match(checks['ha replication lag']?.detail ?? '', new RegExp(`${replica.name} replica`));
      assert.equal(checks['ha sync standby']?.ok, true, 'the sync standby still confirms commits');
    } finally {
      process.kill(startup, 'SIGCONT');
    }
    await until('the replica to catch up', async () => (await readClusterFacts(urls())).replicationLagSeconds === 0);
  });

  test('after SIGKILL of the leader: a new leader on timeline 2, the failover time from /history, and the metrics monitor pushes', async () => {
    const { member, killedAt } = await cluster.killLeader();
    await cluster.waitForNewLeader(member);
    await until(
      'a sync standby under the new leader',
      async () => {
        const facts = await readClusterFacts(urls()).catch(() => undefined);
        return facts !== undefined && facts.timeline === 2 && facts.syncStandbys === 1;
      },
      120,
    );
    const facts = await readClusterFacts(urls());
    assert.notEqual(facts.leader, member.name);
    assert.ok(facts.lastFailoverAt !== undefined && Date.parse(facts.lastFailoverAt) >= killedAt - 1000, facts.lastFailoverAt);
    const checks = byName(clusterChecks(facts, 30));
    assert.match(checks['ha last failover']?.detail ?? '', /timeline 2 began/);

    const registry = buildCommandRegistry(
      {
        command: 'monitor',
        ok: true,
        startedAt: new Date(),
        finishedAt: new Date(),
        cluster: {
          leaderUp: true,
          syncStandbys: facts.syncStandbys,
          replicationLagSeconds: facts.replicationLagSeconds,
          maxReplicationLagSeconds: 30,
          timeline: facts.timeline,
          lastFailoverAt: new Date(facts.lastFailoverAt ?? 0),
        },
      },
      { success: 0, failure: 0 },
    );
    const text = await registry.metrics();
    assert.match(text, /^pms_backup_postgres_sync_standbys 1$/m);
    assert.match(text, /^pms_backup_postgres_timeline 2$/m);
    assert.match(text, /^pms_backup_postgres_replication_lag_limit_seconds 30$/m);
    assert.match(
      text,
      new RegExp(`^pms_backup_postgres_last_failover_timestamp_seconds ${Date.parse(facts.lastFailoverAt ?? '') / 1000}$`, 'm'),
    );
  });

  test('with both standbys gone there is no synchronous standby: the sync and lag checks fail', async () => {
    const leader = await cluster.leader();
    for (const m of cluster.members) if (m.name !== leader.name && m.running) await cluster.kill(m);
    await until(
      'Patroni to drop the standbys',
      async () => {
        const facts = await readClusterFacts([leader.restApiUrl]);
        return facts.syncStandbys === 0 && facts.members.every((m) => m.role === 'leader' || m.state !== 'streaming');
      },
      90,
    );
    const checks = byName(clusterChecks(await readClusterFacts([leader.restApiUrl]), 30));
    assert.equal(checks['ha leader']?.ok, true);
    assert.equal(checks['ha sync standby']?.ok, false);
    assert.match(checks['ha sync standby']?.detail ?? '', /no synchronous standby/);
  });
});
