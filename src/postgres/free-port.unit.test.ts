import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { test } from 'node:test';
import { freePort } from './free-port.js';

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
  });
}

test('freePort gives listenable loopback ports below the ephemeral range, never one that is taken', async () => {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const held: Server[] = [];
  try {
    for (let i = 0; i < 40; i += 1) {
      const port = await freePort();
      // A machine whose ephemeral range starts low gets the kernel's pick instead.
      if (low > 21000) assert.ok(port >= 20000 && port < low, `${port} is outside 20000..${low - 1}`);
      // Holding each one: a later answer is never a port already listened on.
      held.push(await listen(port));
    }
    assert.equal(new Set(held.map((s) => (s.address() as { port: number }).port)).size, held.length);
  } finally {
    await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))));
  }
});
