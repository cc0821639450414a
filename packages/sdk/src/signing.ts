/**
 * Request signing with Web Crypto (PROTOCOL.md §3): the canonical text comes from the
 * protocol package, the HMAC from `crypto.subtle`, available in Node 20+, Deno, Bun and
 * browsers.
 */
import { canonicalPath, signingPrefix, splitTarget } from '../../protocol/src/signing.js';

const encoder = new TextEncoder();
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const keys = new Map<string, Promise<HmacKey>>();

function hmacKey(secret: string): Promise<HmacKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      'raw',
      encoder.encode(secret),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    keys.set(secret, key);
  }
  return key;
}

const hex = (bytes: ArrayBuffer | Uint8Array): string =>
  Array.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes), (b) =>
    b.toString(16).padStart(2, '0'),
  ).join('');

/** A fresh nonce: 32 hex characters, as the Python SDK sends. */
export function newNonce(): string {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

/** Lowercase hex HMAC-SHA256 of the request, keyed by the API key. */
export async function signature(
  apiKey: string,
  method: string,
  target: string,
  timestamp: string,
  nonce: string,
  body: Uint8Array,
): Promise<string> {
  const { path, query } = splitTarget(target);
  const prefix = encoder.encode(
    signingPrefix(method, canonicalPath(path, query), timestamp, nonce),
  );
  const message = new Uint8Array(prefix.length + body.length);
  message.set(prefix, 0);
  message.set(body, prefix.length);
  return hex(await crypto.subtle.sign('HMAC', await hmacKey(apiKey), message));
}

/** The three headers of a signed request. */
export async function signedHeaders(
  apiKey: string,
  method: string,
  target: string,
  body: Uint8Array,
  nowSeconds: number,
): Promise<Record<string, string>> {
  const timestamp = String(Math.floor(nowSeconds));
  const nonce = newNonce();
  return {
    'X-Timestamp': timestamp,
    'X-Nonce': nonce,
    'X-Signature': await signature(apiKey, method, target, timestamp, nonce, body),
  };
}
