// One HTTP request over an undici Pool through its low-level dispatch API: no response
// stream, no parsed header object, one promise per request. About half of what
// `pool.request()` costs per request, which itself is about half of node:http's.

class Exchange {
  constructor(resolve, reject) {
    this.resolve = resolve;
    this.reject = reject;
    this.status = 0;
    this.rawHeaders = null;
    this.first = null;
    this.chunks = null;
  }
  onConnect() {}
  onHeaders(status, rawHeaders) {
    this.status = status;
    this.rawHeaders = rawHeaders;
    return true;
  }
  onData(chunk) {
    if (this.first === null) this.first = chunk;
    else (this.chunks ??= [this.first]).push(chunk);
    return true;
  }
  onComplete() {
    this.resolve(this);
  }
  onError(err) {
    this.reject(err);
  }
  /** The body as text ('' when none). */
  text() {
    if (this.chunks !== null) return Buffer.concat(this.chunks).toString('utf8');
    return this.first === null ? '' : this.first.toString('utf8');
  }
  /** A response header (lower-case name) or undefined; scans the raw list. */
  header(name) {
    const raw = this.rawHeaders;
    for (let i = 0; raw !== null && i < raw.length; i += 2) {
      if (raw[i].length === name.length && raw[i].toString('latin1').toLowerCase() === name) {
        return raw[i + 1].toString('latin1');
      }
    }
    return undefined;
  }
  /** Retry-After in ms, or the fallback. */
  retryAfterMs(fallbackMs) {
    const v = this.header('retry-after');
    const s = v === undefined ? NaN : Number(v);
    return Number.isFinite(s) && s >= 0 ? s * 1000 : fallbackMs;
  }
}

/**
 * Sends one request on `pool`; resolves with the exchange (status, text(), header()) once
 * the whole answer is in, rejects on a network error or when the pool is destroyed.
 */
export function call(pool, method, path, headers, body) {
  return new Promise((resolve, reject) => {
    pool.dispatch({ method, path, headers, body }, new Exchange(resolve, reject));
  });
}

/** The value of an unlabelled metric of the bus's /metrics, or NaN when it has none. */
export async function metric(pool, adminSecret, name) {
  const r = await call(pool, 'GET', '/metrics', { 'x-admin-token': adminSecret });
  const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)`, 'm').exec(r.text());
  return m ? Number(m[1]) : NaN;
}
