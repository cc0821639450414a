import { ERROR_CODES, type ErrorCode } from '@intent-bus/protocol';

/**
 * The one error type the core, the store and the routes throw for anything a client
 * did or may retry. The HTTP layer maps it to the wire shape in a single place.
 */
export class BusError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: { field?: string; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'BusError';
    this.status = ERROR_CODES[code].status;
  }
}

export const invalid = (field: string, message: string): BusError =>
  new BusError('invalid_request', message, { field });

export const notFound = (what = 'Not found'): BusError => new BusError('not_found', what);

export const unauthorized = (): BusError =>
  new BusError('unauthorized', 'Missing or invalid API key');
