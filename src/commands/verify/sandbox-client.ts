import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { PostgresConfig } from '../../config/postgres-config.js';
import { connect } from '../../postgres/connect.js';

const END_WAIT_MS = 2000;

/**
 * usingClient for a sandboxed server. pg's end() waits until the server closes the socket, but
 * code restored from a backup can start a process (COPY ... TO PROGRAM) that inherits the
 * backend's end of the connection and keeps it open after the backend exits: end() would then
 * never resolve and verify would hang. So the wait is bounded and then the socket is destroyed;
 * the sandbox and everything in it are killed right after anyway.
 */
export async function usingSandboxClient<T>(config: PostgresConfig, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(config);
  try {
    return await use(client);
  } finally {
    const ended = client.end().then(
      () => 'ended' as const,
      () => 'ended' as const,
    );
    if ((await Promise.race([ended, sleep(END_WAIT_MS, 'timeout' as const, { ref: false })])) === 'timeout')
      client.connection.stream.destroy();
  }
}
