/**
 * Who is calling. Client routes resolve `X-API-KEY` to a Principal (the main key or a
 * tester key); admin routes accept only the admin token or Basic admin:password.
 * Signature checks, rate limits and quotas hook in after `authenticate` (see app.ts).
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { FastifyRequest } from 'fastify';
import { BusError, unauthorized } from '../core/errors.js';
import { MAIN_KEY_ID, type Principal } from '../core/principal.js';
import type { KeyUsage, Store } from '../store/store.js';

const MAIN: Principal = Object.freeze({ keyId: MAIN_KEY_ID, isMain: true, keyHash: null });

/**
 * How long a node trusts a tester key it looked up without asking the store again. A revoke
 * is normally heard by every node at once (BusEvents.keyRevoked, through the wake relay on
 * PostgreSQL); this is the bound when it is not (a relay that was reconnecting): no node
 * admits a revoked key for longer than this after the revoke (SECURITY.md). Measured cost:
 * one key lookup per active tester key per second and node.
 */
export const KEY_RECHECK_MS = 1000;
/** Tester keys remembered at once; unknown keys are never remembered, so they cannot grow it. */
const KEY_CACHE_MAX = 10_000;

interface KnownKey {
  principal: Principal;
  /** performance.now() when the store last confirmed it. */
  checkedAt: number;
}

export const hashKey = (key: string): string => hash('sha256', key, 'hex');

const digest = (s: string): Buffer => hash('sha256', s, 'buffer');

/** Constant-time equality of two secrets of any length (compares their digests). */
export function secretEquals(given: string, expected: string | Buffer): boolean {
  return timingSafeEqual(digest(given), typeof expected === 'string' ? digest(expected) : expected);
}

export function newApiKey(): { apiKey: string; keyId: string } {
  return {
    apiKey: `tk_${randomBytes(16).toString('hex')}`,
    keyId: `kid_${randomBytes(8).toString('hex')}`,
  };
}

export class Authenticator {
  /** Tester keys by hash, each trusted for KEY_RECHECK_MS after the store confirmed it. */
  private readonly known = new Map<string, KnownKey>();
  /** Look-ups under way, shared by the requests that arrive meanwhile. */
  private readonly pending = new Map<string, Promise<Principal | null>>();
  /**
   * Bumped by every forgetting: a look-up that started before it may have read a key that
   * is gone now, so its answer is not remembered.
   */
  private generation = 0;
  private usage = new Map<string, KeyUsage>();

  /** The main key's SHA-256, computed once (every request is compared with it). */
  private readonly mainKeyDigest: Buffer;

  constructor(
    private readonly store: Store,
    mainKey: string,
    private readonly adminToken: string,
    /** Null turns the Basic login off. */
    private readonly dashboardPassword: string | null,
  ) {
    this.mainKeyDigest = digest(mainKey);
  }

  /** The caller's principal; synchronous for the main key and for tester keys seen lately. */
  authenticate(req: FastifyRequest, now: number): Principal | Promise<Principal> {
    const raw = req.headers['x-api-key'];
    if (typeof raw !== 'string' || raw.length === 0 || raw.length > 256) throw unauthorized();
    const found = this.lookup(raw);
    const admit = (principal: Principal | null): Principal => {
      if (!principal) throw unauthorized();
      if (principal.isMain) return principal;
      const u = this.usage.get(principal.keyId);
      if (u) {
        u.count++;
        u.lastUsedAt = now;
      } else this.usage.set(principal.keyId, { count: 1, lastUsedAt: now });
      return principal;
    };
    return found instanceof Promise ? found.then(admit) : admit(found);
  }

  /** The key id behind a raw key, or null; from the store when not confirmed lately. */
  lookup(rawKey: string): Principal | null | Promise<Principal | null> {
    if (secretEquals(rawKey, this.mainKeyDigest)) return MAIN;
    return this.byHash(hashKey(rawKey));
  }

  /**
   * Whether a principal admitted earlier is still live: a request that waited (a long poll)
   * asks again before it is handed anything.
   */
  stillValid(principal: Principal): boolean | Promise<boolean> {
    if (principal.keyHash === null) return true;
    const found = this.byHash(principal.keyHash);
    return found instanceof Promise
      ? found.then((p) => p?.keyId === principal.keyId)
      : found?.keyId === principal.keyId;
  }

  private byHash(keyHash: string): Principal | null | Promise<Principal | null> {
    const known = this.known.get(keyHash);
    if (known && performance.now() - known.checkedAt < KEY_RECHECK_MS) return known.principal;
    let pending = this.pending.get(keyHash);
    if (pending) return pending;
    const generation = this.generation;
    const startedAt = performance.now();
    pending = this.store.keyByHash(keyHash).then(
      (row) => {
        if (this.pending.get(keyHash) === pending) this.pending.delete(keyHash);
        if (!row) {
          this.known.delete(keyHash);
          return null;
        }
        const principal =
          known?.principal.keyId === row.keyId
            ? known.principal
            : { keyId: row.keyId, isMain: false, keyHash };
        if (generation === this.generation) {
          if (this.known.size >= KEY_CACHE_MAX && !this.known.has(keyHash)) this.known.clear();
          this.known.set(keyHash, { principal, checkedAt: startedAt });
        }
        return principal;
      },
      (err: unknown) => {
        if (this.pending.get(keyHash) === pending) this.pending.delete(keyHash);
        throw err;
      },
    );
    this.pending.set(keyHash, pending);
    return pending;
  }

  /** A key was revoked (here or on another node): it is looked up again before any use. */
  forgetKey(keyId: string): void {
    this.generation++;
    this.pending.clear();
    for (const [h, k] of this.known) if (k.principal.keyId === keyId) this.known.delete(h);
  }

  /** Revokes may have been missed (a wake relay that reconnected): every key is looked up again. */
  forget(): void {
    this.generation++;
    this.pending.clear();
    this.known.clear();
  }

  /** Usage counted since the last call, for the store to add up. */
  takeUsage(): Map<string, KeyUsage> {
    const u = this.usage;
    this.usage = new Map();
    return u;
  }

  /** PROTOCOL.md §3: X-Admin-Token alone decides when present; else Basic admin:password. */
  checkAdmin(req: FastifyRequest): void {
    const token = req.headers['x-admin-token'];
    if (token !== undefined) {
      if (typeof token === 'string' && secretEquals(token, this.adminToken)) return;
      throw adminUnauthorized();
    }
    const auth = req.headers.authorization;
    if (this.dashboardPassword != null && typeof auth === 'string' && /^basic /i.test(auth)) {
      const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0) {
        const user = decoded.slice(0, colon);
        const okUser = secretEquals(user, 'admin');
        const okPass = secretEquals(decoded.slice(colon + 1), this.dashboardPassword);
        if (okUser && okPass) return;
      }
    }
    throw adminUnauthorized();
  }
}

export class AdminUnauthorized extends BusError {}
const adminUnauthorized = (): BusError =>
  new AdminUnauthorized('unauthorized', 'Admin credentials required');

/**
 * Cross-site protection for admin mutations (PROTOCOL.md §3): refuse a foreign Origin,
 * Sec-Fetch-Site: cross-site, or a form body, whatever the credentials.
 */
export function checkSameSite(req: FastifyRequest): void {
  const origin = req.headers.origin;
  // req.host is the Host header, or X-Forwarded-Host when BUS_TRUST_PROXY is set.
  if (typeof origin === 'string' && origin !== '' && hostOf(origin) !== req.host) {
    throw new BusError('forbidden', 'Cross-site admin request refused');
  }
  if (String(req.headers['sec-fetch-site']).toLowerCase() === 'cross-site') {
    throw new BusError('forbidden', 'Cross-site admin request refused');
  }
  // A form body is what a cross-site page can send without asking; an empty one is no body.
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (FORM_TYPES.has(type) && hasBody(req)) {
    throw new BusError('forbidden', 'Form bodies are not accepted on admin routes');
  }
}

const FORM_TYPES = new Set([
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'text/plain',
]);

/** Whether the request carries body bytes (Content-Length above 0, or chunked). */
export function hasBody(req: FastifyRequest): boolean {
  const len = req.headers['content-length'];
  return (len !== undefined && len !== '0') || req.headers['transfer-encoding'] !== undefined;
}

function hostOf(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}
