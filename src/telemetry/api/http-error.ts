/**
 * An error that becomes an HTTP reply (Hono's HTTPException): a typed status and a stable code
 * clients can branch on. Messages are for humans and never contain identifiers or tokens.
 */
export const HTTP_ERRORS = {
  'invalid-body': 400,
  'malformed-json': 400,
  'invalid-query': 400,
  unauthorized: 401,
  // A reader asking for a patient outside its scope, or a reader made before scopes existed.
  'patient-not-in-scope': 403,
  'reader-not-scoped': 403,
  'not-found': 404,
  'body-too-large': 413,
  'unsupported-media-type': 415,
  'rate-limited': 429,
  internal: 500,
  'database-unavailable': 503,
  'shutting-down': 503,
} as const;

export type HttpErrorCode = keyof typeof HTTP_ERRORS;

export class HttpError extends Error {
  readonly status: number;
  readonly code: HttpErrorCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: HttpErrorCode, message: string, headers: Readonly<Record<string, string>> = {}) {
    super(message);
    this.name = 'HttpError';
    this.code = code;
    this.status = HTTP_ERRORS[code];
    this.headers = headers;
  }
}
