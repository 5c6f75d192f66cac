import { PmsError, isPmsError } from '../../errors/catalogue.js';

export interface S3ErrorContext {
  /** What we were doing, as a verb phrase: "store backups/x". */
  readonly action: string;
  readonly endpoint: string;
  readonly bucket: string;
  readonly key?: string;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
  'ENETDOWN',
  'EHOSTDOWN',
  'UND_ERR_SOCKET',
  'ERR_SOCKET_CONNECTION_TIMEOUT',
]);
const ACCESS_NAMES = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidObjectState',
]);

interface SdkLikeError {
  readonly name?: string;
  readonly code?: string;
  readonly errno?: number;
  readonly cause?: unknown;
  readonly errors?: readonly unknown[];
  readonly $metadata?: { readonly httpStatusCode?: number; readonly requestId?: string };
}

/** Network error codes anywhere in the chain (the SDK wraps, Node uses AggregateError for happy eyeballs). */
function networkCode(error: unknown, depth = 0): string | undefined {
  if (depth > 4 || typeof error !== 'object' || error === null) return undefined;
  const e = error as SdkLikeError;
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name === 'TimeoutError') return 'ETIMEDOUT';
  for (const inner of e.errors ?? []) {
    const found = networkCode(inner, depth + 1);
    if (found) return found;
  }
  return networkCode(e.cause, depth + 1);
}

/**
 * Maps an AWS SDK / network failure to the catalogue, branching on error names, codes and HTTP
 * status, never on message text. The SDK's own message is left out on purpose: some S3 error
 * bodies echo request details, and credentials must never reach a log.
 */
export function s3Error(error: unknown, context: S3ErrorContext): PmsError {
  if (isPmsError(error)) return error;
  const e = (typeof error === 'object' && error !== null ? error : {}) as SdkLikeError;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const where = `bucket ${context.bucket} at ${context.endpoint}`;
  const details = {
    endpoint: context.endpoint,
    bucket: context.bucket,
    ...(context.key === undefined ? {} : { key: context.key }),
    s3Error: name,
    ...(status === undefined ? {} : { httpStatus: status }),
    ...(e.$metadata?.requestId ? { requestId: e.$metadata.requestId } : {}),
  };
  const options = { cause: error, details };
  const subject = `cannot ${context.action}`;

  if (name === 'AbortError') {
    return new PmsError('PMS_ERR_ABORTED', `${subject}: the operation was cancelled; nothing was stored`, options);
  }
  const net = networkCode(error);
  if (net !== undefined) {
    return new PmsError(
      'PMS_ERR_REPO_UNAVAILABLE',
      `${subject}: ${where} cannot be reached (${net}); check S3_ENDPOINT/AWS_REGION, DNS, network policy and that the service is up`,
      { cause: error, details: { ...details, network: net } },
    );
  }
  if (name === 'NoSuchBucket') {
    return new PmsError(
      'PMS_ERR_REPO_UNAVAILABLE',
      `${subject}: bucket ${context.bucket} does not exist at ${context.endpoint}; create it or fix BACKUP_REPOSITORY`,
      options,
    );
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new PmsError('PMS_ERR_NOT_FOUND', `${subject}: ${context.key ?? 'the object'} does not exist in ${where}`, options);
  }
  if (name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412) {
    return new PmsError(
      'PMS_ERR_TARGET_EXISTS',
      `${subject}: ${context.key ?? 'the object'} already exists in ${where} (or another writer is creating it); it is write-once and was left unchanged`,
      options,
    );
  }
  if (name === 'CredentialsProviderError') {
    return new PmsError(
      'PMS_ERR_REPO_ACCESS',
      `${subject}: no AWS credentials were found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or their _FILE variants) or give the pod an IAM role`,
      options,
    );
  }
  if (ACCESS_NAMES.has(name) || status === 403 || status === 401) {
    return new PmsError(
      'PMS_ERR_REPO_ACCESS',
      `${subject}: ${where} refused the request (${name}); check the access key, secret key, clock skew and the bucket policy`,
      options,
    );
  }
  if (name === 'NotImplemented' || status === 501 || status === 405) {
    return new PmsError(
      'PMS_ERR_REPO_ACCESS',
      `${subject}: the S3 service at ${context.endpoint} does not support this operation (${name}); use an S3-compatible service that implements it`,
      options,
    );
  }
  if (status !== undefined && status >= 500) {
    return new PmsError(
      'PMS_ERR_REPO_UNAVAILABLE',
      `${subject}: ${where} answered ${status} (${name}); the service is failing, retry later`,
      options,
    );
  }
  return new PmsError(
    'PMS_ERR_REPO_ACCESS',
    `${subject}: ${where} rejected the request (${name}${status === undefined ? '' : `, HTTP ${status}`})`,
    options,
  );
}
