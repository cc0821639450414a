/**
 * Strict auth (PROTOCOL.md §3): HMAC-SHA256 keyed by the API key over the method, the
 * canonical path and query, the timestamp, the nonce and the exact body bytes. Checked on
 * every request that carries any of the three headers; required of every client request
 * when BUS_REQUIRE_SIGNATURES is set.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import {
  NONCE_MAX_LENGTH,
  SIGNATURE_WINDOW_SECONDS,
  canonicalPath,
  signingPrefix,
  signingAmbiguity,
  splitTarget,
} from '@intent-bus/protocol';
import { BusError } from '../core/errors.js';
import type { Store } from '../store/store.js';
import type { Principal } from '../core/principal.js';
import { header } from './context.js';

/** Live nonces the store holds before it refuses new ones with 503 (none evicted early). */
export const NONCE_CAPACITY = 1_000_000;

const refuse = (message: string): BusError => new BusError('invalid_signature', message);
const HEX64 = /^[0-9a-fA-F]{64}$/;

export function hmacHex(key: string, prefix: string, body: Buffer | null): string {
  const h = createHmac('sha256', key).update(prefix);
  if (body) h.update(body);
  return h.digest('hex');
}

/** Throws at once for a bad signature; waits (a promise) only to record a good one's nonce. */
export function checkSignature(
  req: FastifyRequest,
  principal: Principal,
  opts: { store: Store; now: number; required: boolean },
): void | Promise<void> {
  const timestamp = header(req, 'x-timestamp');
  const nonce = header(req, 'x-nonce');
  const signature = header(req, 'x-signature');
  const present = [timestamp, nonce, signature].filter((v) => v !== undefined).length;
  if (present === 0) {
    if (opts.required) throw new BusError('signature_required', 'Signed request required');
    return;
  }
  if (timestamp === undefined || nonce === undefined || signature === undefined) {
    throw refuse('Missing required signature headers (X-Timestamp, X-Nonce, X-Signature)');
  }
  if (!/^\d{1,12}$/.test(timestamp.trim())) throw refuse('Invalid timestamp');
  const ts = Number(timestamp.trim());
  if (Math.abs(opts.now / 1000 - ts) > SIGNATURE_WINDOW_SECONDS) throw refuse('Stale timestamp');
  if (nonce.length === 0 || nonce.length > NONCE_MAX_LENGTH) {
    throw refuse(`Invalid nonce: 1-${NONCE_MAX_LENGTH} characters`);
  }
  const target = req.raw.url ?? '/';
  const ambiguity = signingAmbiguity(target, req.routeOptions.schema?.querystring !== undefined);
  if (ambiguity !== null) throw refuse(ambiguity);
  const { path, query } = splitTarget(target);
  const apiKey = header(req, 'x-api-key') ?? '';
  const expected = hmacHex(
    apiKey,
    signingPrefix(req.method, canonicalPath(path, query), timestamp, nonce),
    req.rawBody,
  );
  if (
    !HEX64.test(signature) ||
    !timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(signature, 'hex'))
  ) {
    throw refuse('Bad signature');
  }
  // Only a valid signature spends its nonce, so forgeries cannot burn a client's nonces.
  return opts.store
    .nonceRecord(
      principal.keyId,
      nonce,
      (ts + SIGNATURE_WINDOW_SECONDS) * 1000,
      opts.now,
      NONCE_CAPACITY,
    )
    .then((seen) => {
      if (seen === 'replay') throw refuse('Replay detected');
      if (seen === 'full') {
        throw new BusError('database_busy', 'Nonce store is full; retry later', {
          retryAfterSeconds: 5,
        });
      }
    });
}
