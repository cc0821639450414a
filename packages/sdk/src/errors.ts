/** Typed errors of the SDK: catch the class, read `code` and `status` for details. */

export class IntentBusError extends Error {
  constructor(
    message: string,
    /** The protocol's error code (`invalid_request`, `not_found`, …), or a client-side one. */
    readonly code: string,
    /** The HTTP status, or 0 when no answer came. */
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * 401 or 403: a missing, unknown or refused key, signature or admin credential (status 0
 * when the client has no credential to send at all: codes `no_api_key`, `no_admin_token`).
 */
export class AuthError extends IntentBusError {}

/** 429: slow down; `retryAfterSeconds` says for how long. */
export class RateLimitError extends IntentBusError {
  constructor(
    message: string,
    code: string,
    status: number,
    readonly retryAfterSeconds: number,
  ) {
    super(message, code, status);
  }
}

/**
 * 429 `limit_exceeded`: the key holds as many open and claimed intents as the bus allows
 * (BUS_MAX_OPEN_PER_KEY). Waiting seconds does not lift it, finishing jobs does: the SDK
 * never retries it. A RateLimitError too, for code that catches 429s as one.
 */
export class QuotaError extends RateLimitError {}

/** 404 on extend, fulfil or fail: the claim token is no longer live. Never retry. */
export class LeaseLostError extends IntentBusError {}

/** 404 on anything else: no such intent (for this key), KV name, key or route. */
export class NotFoundError extends IntentBusError {}

/** 400, 405, 413, 415, 422: the request itself is wrong. */
export class ValidationError extends IntentBusError {}

/** 5xx: the bus could not serve the request (`retryAfterSeconds` when it said). */
export class ServerError extends IntentBusError {
  constructor(
    message: string,
    code: string,
    status: number,
    readonly retryAfterSeconds: number | null,
  ) {
    super(message, code, status);
  }
}

/** No answer: the bus is unreachable, the connection broke or the request timed out. */
export class NetworkError extends IntentBusError {}

/** Maps an error answer to its class. */
export function errorFromResponse(
  status: number,
  body: unknown,
  retryAfter: string | null,
  leaseRoute: boolean,
): IntentBusError {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof e?.code === 'string' ? e.code : `http_${status}`;
  const message = typeof e?.message === 'string' ? e.message : `HTTP ${status}`;
  const seconds =
    retryAfter != null && Number.isFinite(Number(retryAfter)) ? Number(retryAfter) : null;
  if (status === 401 || status === 403) return new AuthError(message, code, status);
  if (status === 429) {
    return code === 'limit_exceeded'
      ? new QuotaError(message, code, status, seconds ?? 1)
      : new RateLimitError(message, code, status, seconds ?? 1);
  }
  if (status === 404) {
    return leaseRoute && code === 'not_found'
      ? new LeaseLostError(message, code, status)
      : new NotFoundError(message, code, status);
  }
  if (status >= 500) return new ServerError(message, code, status, seconds);
  return new ValidationError(message, code, status);
}
