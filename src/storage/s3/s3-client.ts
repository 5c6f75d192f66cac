import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { S3ClientTuning, S3Settings } from '../../config/config.js';
import { s3RetryStrategy } from './s3-retry.js';

/**
 * Knobs with defaults chosen for hundreds-of-GB backups on a small pod. Each is documented
 * beside its value because each trades memory, speed or failure latency.
 */
export interface S3Tuning extends S3ClientTuning {
  /**
   * Multipart part size. S3 allows 10,000 parts, so 64 MiB parts allow objects up to 640 GiB.
   * Memory for one put is about (queueSize + 2) x partSize (parts in flight plus the part
   * being assembled and its copy), i.e. 256 MiB with the defaults, whatever the object size.
   */
  readonly partSize: number;
  /** Parts uploaded concurrently; 2 lets reading the next part overlap sending the last. */
  readonly queueSize: number;
  /**
   * Attempts per request against 5xx, resets and timeouts (s3-retry.ts). Small so "S3 is down"
   * fails in seconds; throttling (SlowDown) is ridden out for up to socketTimeoutMs instead.
   */
  readonly maxAttempts: number;
  /** TCP connect timeout: a black-holed endpoint fails after about maxAttempts x this. */
  readonly connectionTimeoutMs: number;
  /**
   * Inactivity limit of one attempt while its request is sent or its response headers awaited
   * (the SDK then retries). A download's body is watched by S3Storage.get instead, which counts
   * only time the reader spends waiting for bytes: a slow consumer, such as pg_restore building
   * an index, may legitimately stop reading for minutes.
   */
  readonly socketTimeoutMs: number;
}

/** The defaults of BACKUP_S3_* in src/config/settings.ts (where each is explained for operators). */
export const DEFAULT_S3_TUNING: S3Tuning = Object.freeze({
  partSize: 64 * 1024 * 1024,
  queueSize: 2,
  maxAttempts: 3,
  connectionTimeoutMs: 5_000,
  socketTimeoutMs: 120_000,
});

/** Human-readable endpoint for messages (never contains credentials). */
export function describeEndpoint(settings: S3Settings): string {
  return settings.endpoint ?? `https://s3.${settings.region}.amazonaws.com`;
}

export function createS3Client(settings: S3Settings, tuning: S3Tuning): S3Client {
  const agentOptions = { keepAlive: true, keepAliveMsecs: 30_000, maxSockets: Math.max(8, tuning.queueSize * 2) };
  const credentials =
    settings.accessKeyId !== undefined && settings.secretAccessKey !== undefined
      ? // The only place secrets are revealed: the SDK signs with them and never logs them.
        { accessKeyId: settings.accessKeyId.reveal(), secretAccessKey: settings.secretAccessKey.reveal() }
      : undefined; // undefined: the default chain (IRSA / instance role / ~/.aws)
  return new S3Client({
    region: settings.region,
    ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
    forcePathStyle: settings.forcePathStyle,
    ...(credentials === undefined ? {} : { credentials }),
    maxAttempts: tuning.maxAttempts,
    retryStrategy: s3RetryStrategy({ maxAttempts: tuning.maxAttempts, throttleBudgetMs: tuning.socketTimeoutMs }),
    // Flexible (CRC) checksums use aws-chunked trailers that s3rver and older MinIO store as
    // garbage; integrity is end to end instead (manifest SHA-256 and OpenPGP MDC).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: tuning.connectionTimeoutMs,
      socketTimeout: tuning.socketTimeoutMs,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
    },
  });
}
