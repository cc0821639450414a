/** The single place where anything thrown becomes the protocol's error shape. */
import type { FastifyError } from 'fastify';
import { ERROR_CODES, FIELD_MESSAGES, type ErrorBody, type ErrorCode } from '@intent-bus/protocol';
import { BusError } from '../core/errors.js';
import { StoreUnavailableError } from '../store/store.js';

export interface WireError {
  status: number;
  body: ErrorBody;
  retryAfterSeconds?: number;
  /** True for failures the bus must log as its own fault. */
  internal: boolean;
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

const wire = (code: ErrorCode, message: string, field?: string): WireError => ({
  status: ERROR_CODES[code].status,
  body: { error: field ? { code, message, field } : { code, message } },
  internal: code === 'internal_error',
});

/** Fastify's own error codes for things a client did. */
const FASTIFY_CODES: Record<string, [ErrorCode, string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ['payload_too_large', 'Request body is too large'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['invalid_request', 'Content-Length does not match the body'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 'Request body must be JSON'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['invalid_json', 'Request body is empty'],
  FST_ERR_BAD_URL: ['invalid_request', 'Malformed URL'],
  FST_ERR_MAX_PARAM_LENGTH: ['invalid_request', 'A path segment is too long'],
  FST_ERR_ASYNC_CONSTRAINT: ['invalid_request', 'Malformed request'],
};

export function validationMessage(context: string, errors: readonly AjvError[]): WireError {
  const e = errors[0];
  if (!e) return wire('invalid_request', `Invalid ${context}`);
  // A nested member is named by its path: `intent.priority` (a schedule's intent).
  const path = e.instancePath.split('/').filter(Boolean);
  if (e.keyword === 'required') path.push(String(e.params.missingProperty));
  if (e.keyword === 'additionalProperties') {
    const name = [...path, String(e.params.additionalProperty)].join('.');
    return wire('invalid_request', `${name} is not a field of this request`, name);
  }
  const field = path.length === 0 ? undefined : path.join('.');
  if (field === undefined) {
    return wire(
      'invalid_request',
      `${context === 'body' ? 'Body' : context} must be a JSON object`,
    );
  }
  const pinned = FIELD_MESSAGES[field];
  if (pinned && ['required', 'type', 'minLength'].includes(e.keyword)) {
    return wire('invalid_request', pinned, field);
  }
  if (e.keyword === 'required') return wire('invalid_request', `Missing ${field}`, field);
  const detail =
    e.keyword === 'enum'
      ? `must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`
      : (e.message ?? 'is invalid');
  return wire('invalid_request', `${field} ${detail}`, field);
}

export function toWireError(err: unknown): WireError {
  if (err instanceof BusError) {
    const w = wire(err.code, err.message, err.extra.field);
    if (err.extra.retryAfterSeconds !== undefined)
      w.retryAfterSeconds = err.extra.retryAfterSeconds;
    return w;
  }
  if (err instanceof StoreUnavailableError) {
    return {
      ...wire('database_busy', 'The store is busy or unavailable; retry later'),
      retryAfterSeconds: 1,
    };
  }
  const fe = err as Partial<FastifyError> & { validation?: AjvError[]; validationContext?: string };
  if (Array.isArray(fe.validation)) {
    return validationMessage(fe.validationContext ?? 'request', fe.validation);
  }
  const known = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (known) return wire(known[0], known[1]);
  // Any other 4xx raised by Fastify or a plugin: keep its status, use our shape.
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    const code = (Object.keys(ERROR_CODES) as ErrorCode[]).find(
      (c) => ERROR_CODES[c].status === status,
    );
    return { ...wire(code ?? 'invalid_request', fe.message ?? 'Bad request'), status };
  }
  return wire('internal_error', 'Internal error; it has been logged');
}
