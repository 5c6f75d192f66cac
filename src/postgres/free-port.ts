import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A loopback TCP port nothing listens on, for a server this process is about to start.
 *
 * Not the kernel's pick (port 0): that comes from the ephemeral range, which every outgoing
 * connection on the machine also draws from, so between our probe and the server's bind a
 * client elsewhere (an S3 request of a test running beside us) can take it as its source port,
 * and the server fails with "could not create any TCP/IP sockets" (seen on a Patroni member).
 * Below the ephemeral range only listeners compete, and a probe sees those.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  if (low > FIRST_LISTEN_PORT + 1000) {
    for (let attempt = 0; attempt < 50; attempt += 1) {
      const port = FIRST_LISTEN_PORT + Math.floor(Math.random() * (low - FIRST_LISTEN_PORT));
      if ((await probe(port)) !== undefined) return port;
    }
  }
  const port = await probe(0);
  if (port === undefined) throw new Error('no free loopback port');
  return port;
}

/** Above the ports well-known services use, below Linux's default ephemeral range (32768). */
const FIRST_LISTEN_PORT = 20000;

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) ? low : 0;
  } catch {
    return 0;
  }
}

/** Listens on `port` (0: any) on 127.0.0.1 and closes again: the port, or undefined when taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : undefined));
    });
  });
}
