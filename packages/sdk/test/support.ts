/**
 * Test support for the SDK: the server's real test bus (packages/server/test/helpers.ts),
 * plus small helpers for ports, waiting and lossy transports.
 */
import { createServer } from 'node:net';
import { IntentClient, type IntentClientOptions } from '../src/index.js';
import { ADMIN_TOKEN, MAIN_KEY, type TestBus } from '../../server/test/helpers.js';

export {
  ADMIN_TOKEN,
  MAIN_KEY,
  startTestBus,
  type TestBus,
  type StartOptions,
} from '../../server/test/helpers.js';

/**
 * Closes a test bus. An aborted fetch (a runtime stopping mid-claim) can leave a socket the
 * client opened but never sent a request on; Node's server counts it as active, not idle,
 * and close() would wait for its headers timeout. Past a short wait, such sockets are cut.
 */
export async function closeBus(t: TestBus): Promise<void> {
  const closing = t.close();
  const cut = setTimeout(() => t.bus.app.server.closeAllConnections(), 1000);
  try {
    await closing;
  } finally {
    clearTimeout(cut);
  }
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A client of the test bus: the main key (or `apiKey`) and the admin token. */
export function clientOf(t: TestBus, options: IntentClientOptions = {}): IntentClient {
  return new IntentClient({
    baseUrl: t.url,
    apiKey: MAIN_KEY,
    adminToken: ADMIN_TOKEN,
    ...options,
  });
}

/** Which goals were seen, unique per test so tests sharing a bus never meet. */
let goalCount = 0;
export const uniqueGoal = (name: string): string => `${name}_${process.pid}_${++goalCount}`;

export interface RecordedCall {
  method: string;
  url: string;
  headers: Headers;
  /** The request body as text, when there was one. */
  body: string | undefined;
}

/**
 * A fetch that records every call and performs it for real; when `lose(call, n)` says so,
 * it throws after the real request completed, as if the connection dropped before the
 * answer arrived.
 */
export function lossyFetch(lose: (call: RecordedCall, n: number) => boolean): {
  fetch: typeof fetch;
  calls: RecordedCall[];
} {
  const calls: RecordedCall[] = [];
  const wrapped = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const call: RecordedCall = {
      method: init?.method ?? 'GET',
      url: String(input),
      headers: new Headers(init?.headers),
      body:
        typeof init?.body === 'string'
          ? init.body
          : init?.body instanceof Uint8Array
            ? new TextDecoder().decode(init.body)
            : undefined,
    };
    calls.push(call);
    const res = await fetch(input, init);
    if (lose(call, calls.length)) {
      await res.arrayBuffer();
      throw new TypeError('fetch failed: connection reset (simulated)');
    }
    return res;
  };
  return { fetch: wrapped as typeof fetch, calls };
}
