import { type IncomingMessage, type Server, type ServerResponse, createServer, request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';

/**
 * What the proxy does to a request a rule matches:
 * - `error`: answers 500 InternalError or 503 SlowDown with an S3 XML error body (the request is
 *   read and dropped, never forwarded);
 * - `reset-request`: resets the connection once `afterBytes` of the request body arrived (or at
 *   its end, if shorter); nothing is forwarded;
 * - `reset-response`: forwards the request, sends the response headers and at most `afterBytes`
 *   of its body, then resets the connection;
 * - `stall`: sends nothing back until the proxy closes; with `afterBytes` the request is
 *   forwarded and the headers and that many body bytes are sent first, without it the request
 *   is read and dropped;
 * - `latency`: waits `ms` before forwarding the request unchanged.
 */
export type S3Fault =
  | { readonly kind: 'error'; readonly status: 500 | 503 }
  | { readonly kind: 'reset-request'; readonly afterBytes: number }
  | { readonly kind: 'reset-response'; readonly afterBytes: number }
  | { readonly kind: 'stall'; readonly afterBytes?: number }
  | { readonly kind: 'latency'; readonly ms: number };

export interface S3FaultRule {
  /** HTTP method (GET, PUT, POST, HEAD, DELETE); any when unset. */
  readonly method?: string;
  /** Tested against the object key (path-style, without the bucket); any when unset. */
  readonly key?: RegExp;
  /** Only UploadPart requests with this partNumber. */
  readonly partNumber?: number;
  /** Fires only on the nth request the rule matches (1-based); on every match when unset. */
  readonly nth?: number;
  /** Fires at most this many times (default: once with `nth`, otherwise without limit). */
  readonly times?: number;
  readonly fault: S3Fault;
}

/** One request the proxy saw, in arrival order. */
export interface S3ProxyRequest {
  readonly method: string;
  readonly key: string;
  readonly partNumber: number | undefined;
  /** The multipart upload a request belongs to (UploadPart, Complete, Abort). */
  readonly uploadId: string | undefined;
  /** The fault applied, if a rule fired. */
  readonly fault: S3Fault['kind'] | undefined;
  readonly at: number;
}

export interface RuleHandle {
  /** Requests the rule fired on so far. */
  readonly fired: number;
  remove(): void;
}

export interface S3FaultProxy {
  /** http://127.0.0.1:<port>: point S3_ENDPOINT (or BACKUP_DR_S3_ENDPOINT) here. */
  readonly endpoint: string;
  readonly port: number;
  readonly requests: readonly S3ProxyRequest[];
  /** Adds a rule; the first rule that fires on a request decides its fate. */
  add(rule: S3FaultRule): RuleHandle;
  /** Removes every rule and forgets the requests seen (stalled requests stay stalled). */
  reset(): void;
  close(): Promise<void>;
}

const ERROR_BODIES = {
  500: { code: 'InternalError', message: 'We encountered an internal error. Please try again.' },
  503: { code: 'SlowDown', message: 'Please reduce your request rate.' },
} as const;

interface ParsedTarget {
  readonly key: string;
  readonly partNumber: number | undefined;
  readonly uploadId: string | undefined;
}

function parseTarget(url: string): ParsedTarget {
  const parsed = new URL(url, 'http://proxy');
  // Path style: /bucket/key...; the key is what follows the bucket.
  const [, , ...rest] = parsed.pathname.split('/');
  const part = parsed.searchParams.get('partNumber');
  return {
    key: decodeURIComponent(rest.join('/')),
    partNumber: part === null ? undefined : Number(part),
    uploadId: parsed.searchParams.get('uploadId') ?? undefined,
  };
}

class Rule implements RuleHandle {
  fired = 0;
  #matched = 0;
  readonly #rule: S3FaultRule;
  readonly #limit: number;
  readonly #remove: (rule: Rule) => void;

  constructor(rule: S3FaultRule, remove: (rule: Rule) => void) {
    this.#rule = rule;
    this.#limit = rule.times ?? (rule.nth === undefined ? Number.POSITIVE_INFINITY : 1);
    this.#remove = remove;
  }

  get fault(): S3Fault {
    return this.#rule.fault;
  }

  /** Counts the request if it matches; true when the fault applies to it. */
  fires(method: string, target: ParsedTarget): boolean {
    const r = this.#rule;
    if (r.method !== undefined && r.method.toUpperCase() !== method) return false;
    if (r.key !== undefined && !r.key.test(target.key)) return false;
    if (r.partNumber !== undefined && r.partNumber !== target.partNumber) return false;
    this.#matched += 1;
    if (r.nth !== undefined && this.#matched < r.nth) return false;
    if (this.fired >= this.#limit) return false;
    this.fired += 1;
    return true;
  }

  remove(): void {
    this.#remove(this);
  }
}

/** A TCP reset where the platform has one (the client sees ECONNRESET), a plain destroy otherwise. */
function reset(socket: Socket): void {
  if (typeof socket.resetAndDestroy === 'function' && !socket.destroyed) socket.resetAndDestroy();
  else socket.destroy();
}

/**
 * A real HTTP proxy on a free loopback port in front of an S3 server (s3rver in the tests),
 * injecting the faults object stores show in production: 500s, 503 SlowDown, connections cut
 * mid-body, responses that stall, latency. Requests are forwarded byte for byte with their
 * headers (the Host header included, so SigV4 signatures still verify upstream). Test only.
 */
export async function startS3FaultProxy(upstream: string): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  let rules: Rule[] = [];
  let requests: S3ProxyRequest[] = [];
  const removeRule = (rule: Rule): void => {
    rules = rules.filter((r) => r !== rule);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, onResponse?: (upstreamRes: IncomingMessage) => void): void => {
    const out = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: false },
      (upstreamRes) => {
        if (onResponse) {
          onResponse(upstreamRes);
          return;
        }
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const parsed = parseTarget(req.url ?? '/');
    const rule = rules.find((r) => r.fires(method, parsed));
    const fault = rule?.fault;
    requests.push({
      method,
      key: parsed.key,
      partNumber: parsed.partNumber,
      uploadId: parsed.uploadId,
      fault: fault?.kind,
      at: Date.now(),
    });
    const socket = req.socket;
    switch (fault?.kind) {
      case undefined:
        forward(req, res);
        return;
      case 'latency': {
        req.pause();
        setTimeout(() => forward(req, res), fault.ms);
        return;
      }
      case 'error': {
        const { code, message } = ERROR_BODIES[fault.status];
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>/${parsed.key}</Resource><RequestId>pms-fault-proxy</RequestId></Error>`;
        req.resume();
        req.once('end', () => {
          res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
          res.end(method === 'HEAD' ? undefined : body);
        });
        return;
      }
      case 'reset-request': {
        let seen = 0;
        const check = (): void => {
          if (seen >= fault.afterBytes) reset(socket);
        };
        check();
        req.on('data', (chunk: Buffer) => {
          seen += chunk.length;
          check();
        });
        req.once('end', () => reset(socket));
        return;
      }
      case 'reset-response':
        forward(req, res, (upstreamRes) => {
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
          let left = fault.afterBytes;
          const cut = (): void => {
            upstreamRes.destroy();
            // Never res.end(): with chunked encoding that would be a complete (short) body. The
            // pause lets what was written cross loopback before the reset discards the rest.
            setTimeout(() => reset(socket), 100);
          };
          if (left <= 0) {
            cut();
            return;
          }
          upstreamRes.on('data', (chunk: Buffer) => {
            if (left <= 0) return;
            const piece = chunk.subarray(0, left);
            left -= piece.length;
            res.write(piece);
            if (left <= 0) cut();
          });
          upstreamRes.once('end', () => {
            if (left > 0) cut();
          });
        });
        return;
      case 'stall': {
        const afterBytes = fault.afterBytes;
        if (afterBytes === undefined) {
          req.resume();
          return;
        }
        forward(req, res, (upstreamRes) => {
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
          let left = afterBytes;
          upstreamRes.on('data', (chunk: Buffer) => {
            if (left <= 0) return;
            const piece = chunk.subarray(0, left);
            left -= piece.length;
            res.write(piece);
            if (left <= 0) upstreamRes.destroy();
          });
        });
        return;
      }
    }
  };

  const server: Server = createServer(handle);
  // Keep-alive sockets of the client must not hold close() up.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the fault proxy has no TCP address');
  const port = address.port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    add(rule) {
      const handleRule = new Rule(rule, removeRule);
      rules.push(handleRule);
      return handleRule;
    },
    reset() {
      rules = [];
      requests = [];
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
