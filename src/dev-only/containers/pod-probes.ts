import assert from 'node:assert/strict';
import type { PodmanCluster } from './podman-cluster.js';

/** Polls `probe` every 0.5 s until it gives a value (a throw counts as not yet), failing the test after `seconds`. */
export async function until<T>(what: string, seconds: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * What a new TCP connection from a pod's container gets, as a client in that pod sees the network:
 * `open`, `timeout`, or the error code (ECONNREFUSED when a NetworkPolicy refuses it: the
 * nftables rules reset refused connections).
 */
export async function connects(cluster: PodmanCluster, pod: string, container: string, host: string, port: number): Promise<string> {
  const program = `const s=require('net').connect(${port},'${host}');s.setTimeout(5000);s.on('connect',()=>{console.log('open');s.destroy()});s.on('error',e=>console.log(e.code));s.on('timeout',()=>{console.log('timeout');s.destroy()})`;
  return (await cluster.exec(pod, container, ['node', '-e', program])).output.trim();
}

/** psql in a pod's postgres container, as the superuser over the socket (peer authentication); fails the test on an error. */
export async function psqlIn(cluster: PodmanCluster, pod: string, sql: string, database = 'patient_telemetry'): Promise<string> {
  const exit = await cluster.exec(pod, 'postgres', ['psql', '-v', 'ON_ERROR_STOP=1', '-XAt', '-U', 'postgres', '-d', database, '-c', sql]);
  assert.equal(exit.code, 0, exit.output);
  return exit.output.trim();
}
