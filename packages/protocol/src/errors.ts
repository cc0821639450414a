/**
 * Every error code the bus answers with, its HTTP status and what it means.
 * Codes are stable: once published, a code is never reused for something else.
 * The wire shape is always `{"error": {"code", "message"}}` (PROTOCOL.md §5).
 */
export const ERROR_CODES = {
  invalid_request: {
    status: 400,
    meaning: 'A field is missing, has the wrong type or is out of range',
  },
  invalid_json: { status: 400, meaning: 'The body is not valid JSON' },
  unauthorized: { status: 401, meaning: 'Missing or unknown credentials' },
  signature_required: { status: 401, meaning: 'Unsigned request while signatures are required' },
  forbidden: { status: 403, meaning: 'Credentials are valid but may not do this' },
  invalid_signature: {
    status: 403,
    meaning: 'The HMAC signature headers are wrong, stale or replayed',
  },
  https_required: {
    status: 403,
    meaning: 'Plain HTTP from a non-local client while HTTPS is enforced',
  },
  not_found: {
    status: 404,
    meaning: 'No such route, intent, key or live claim token for this key',
  },
  method_not_allowed: { status: 405, meaning: 'The route exists but not with this method' },
  request_timeout: {
    status: 408,
    meaning: 'The request was not received in time (slow client)',
  },
  payload_too_large: { status: 413, meaning: 'The body is over the size limit' },
  headers_too_large: {
    status: 431,
    meaning: 'The request headers are too large',
  },
  unsupported_media_type: { status: 415, meaning: 'A body with a non-JSON content type' },
  idempotency_conflict: { status: 422, meaning: 'Idempotency-Key reused with a different body' },
  rate_limited: { status: 429, meaning: 'Too many requests for this key; see Retry-After' },
  limit_exceeded: { status: 429, meaning: 'Too many open and claimed intents for this key' },
  too_many_streams: { status: 429, meaning: 'Too many open event streams for this key or node' },
  internal_error: { status: 500, meaning: 'A bug in the bus; it is logged with the request id' },
  database_busy: {
    status: 503,
    meaning: 'The store is locked, full, read-only or unreachable; see Retry-After',
  },
  maintenance: { status: 503, meaning: 'The bus is in maintenance mode' },
  shutting_down: { status: 503, meaning: 'The bus is stopping; retry on another node or later' },
} as const satisfies Record<string, { status: number; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
}

export function errorStatus(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}
