/**
 * Request signing of PROTOCOL.md §3 (strict auth): HMAC-SHA256, keyed by the API key,
 * over `METHOD \n CANONICAL_PATH \n TIMESTAMP \n NONCE \n BODY`. This module builds the
 * canonical text only (pure string work, no Node or Web APIs), so the server (node:crypto)
 * and the SDK (Web Crypto) sign exactly the same bytes.
 */

export const SIGNATURE_WINDOW_SECONDS = 300;
export const NONCE_MAX_LENGTH = 128;

const utf8 = new TextEncoder();
const utf8Lenient = new TextDecoder('utf-8', { fatal: false });

/**
 * Percent-decodes like a lenient URL parser: valid %XX sequences become bytes (read as
 * UTF-8), malformed ones stay as they are; `+` becomes a space only when asked (queries).
 */
export function percentDecode(text: string, plusAsSpace = false): string {
  const s = plusAsSpace ? text.replace(/\+/g, ' ') : text;
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length;) {
    const c = s[i]!;
    if (c === '%' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    const cp = s.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    for (const b of utf8.encode(ch)) bytes.push(b);
    i += ch.length;
  }
  return utf8Lenient.decode(new Uint8Array(bytes));
}

/** RFC 3986 encoding with nothing left unescaped but A-Z a-z 0-9 - . _ ~ */
export function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * The path percent-decoded, then, if the query is not empty, `?` and its pairs decoded,
 * sorted by key (stable for repeated keys), blank values kept, re-encoded per RFC 3986.
 */
export function canonicalPath(rawPath: string, rawQuery: string): string {
  const path = percentDecode(rawPath);
  const pairs = rawQuery
    .split('&')
    .filter((p) => p.length > 0)
    .map((p) => {
      const eq = p.indexOf('=');
      const k = eq < 0 ? p : p.slice(0, eq);
      const v = eq < 0 ? '' : p.slice(eq + 1);
      return [percentDecode(k, true), percentDecode(v, true)] as const;
    });
  if (pairs.length === 0) return path;
  // Array.prototype.sort is stable: repeated keys keep their order.
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `${path}?${pairs.map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).join('&')}`;
}

/**
 * Why a signed request must be refused although its signature may match, or null: the
 * canonical path decodes the path, so a percent-encoded `?` in it signs exactly like a real
 * query (`/set/x%3Fq=1`, KV name `x?q=1`, and `/set/x?q=1`, KV name `x`, sign the same).
 * The 2.1 algorithm stays as it is (every 2.1 signer uses it); the verifier refuses the one
 * of each such pair that a client could not have meant (PROTOCOL.md §3 [ext]):
 * - a query on a route that reads none (the twin of a `%3F` in a path parameter);
 * - a `%3F` in the path of a route that reads a query (its path parameters are ids, which
 *   hold no `?`);
 * - a `#` in the request target: no fragment is sent to a server, and the router drops it
 *   (`/set/x#y` would be KV name `x`, signed like `/set/x%23y`, KV name `x#y`).
 */
export function signingAmbiguity(target: string, routeReadsQuery: boolean): string | null {
  if (target.includes('#')) return 'Unsignable request: a "#" in the request target';
  const { path, query } = splitTarget(target);
  if (routeReadsQuery) {
    return /%3f/i.test(path)
      ? 'Unsignable request: a percent-encoded "?" (%3F) in the path of a route that reads a query'
      : null;
  }
  return query !== ''
    ? 'Unsignable request: a query on a route that reads none (it signs like a %3F in the path)'
    : null;
}

/** Splits a request target (`/path?query`) into its raw path and raw query. */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q < 0
    ? { path: target, query: '' }
    : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/** The bytes that are signed, as a prefix text (the body bytes follow it unchanged). */
export function signingPrefix(
  method: string,
  canonical: string,
  timestamp: string,
  nonce: string,
): string {
  return `${method.toUpperCase()}\n${canonical}\n${timestamp}\n${nonce}\n`;
}
