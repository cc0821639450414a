/**
 * A history of what clients saw, and the checker of PROTOCOL.md §9's promises over it:
 * every acknowledged intent ends fulfilled or dead with a reason; no intent is fulfilled
 * twice; no token succeeds once a later claim of its intent had been handed out; and a
 * fulfil answered 200 is what the intent ends with (an acknowledged change is durable).
 * Times are the client's `performance.now()` in ms.
 */

export interface ClaimSeen {
  id: string;
  token: string;
  /** When the 200 arrived. */
  at: number;
}

export interface FulfilTried {
  id: string;
  token: string;
  sentAt: number;
  /** The HTTP status, or 0 when no answer came (network error, the server gone). */
  status: number;
}

export interface FinalState {
  status: string;
  /** The stored result (the workers here send their claim token as a text result). */
  result?: unknown;
  dead_reason?: string;
}

export interface History {
  /** Ids of the publishes answered 201. */
  acknowledged: Set<string>;
  claims: ClaimSeen[];
  fulfils: FulfilTried[];
  /**
   * The state of every intent the history mentions (acknowledged or claimed) once
   * drained; absent when the bus answered 404.
   */
  finals: Map<string, FinalState>;
}

export interface Verdict {
  checked: number;
  fulfilled: number;
  dead: number;
  /** Acknowledged intents missing, or not finished, or dead without a reason. */
  lost: string[];
  doubleFulfilled: string[];
  /** Fulfils answered 200 for a token that a later claim had already replaced. */
  staleSuccesses: string[];
  /** Fulfils answered 200 that the intent's final state does not show. */
  undurable: string[];
  /** Fulfils answered 200 for a token no claim handed out. */
  unknownTokens: string[];
}

export const violations = (v: Verdict): number =>
  v.lost.length +
  v.doubleFulfilled.length +
  v.staleSuccesses.length +
  v.undurable.length +
  v.unknownTokens.length;

export function check(h: History): Verdict {
  const v: Verdict = {
    checked: h.acknowledged.size,
    fulfilled: 0,
    dead: 0,
    lost: [],
    doubleFulfilled: [],
    staleSuccesses: [],
    undurable: [],
    unknownTokens: [],
  };
  for (const id of h.acknowledged) {
    const f = h.finals.get(id);
    if (f?.status === 'fulfilled') v.fulfilled++;
    else if (f?.status === 'dead' && f.dead_reason) v.dead++;
    else v.lost.push(id);
  }
  const claimsOf = new Map<string, ClaimSeen[]>();
  for (const c of h.claims) {
    if (!claimsOf.has(c.id)) claimsOf.set(c.id, []);
    claimsOf.get(c.id)!.push(c);
  }
  const successes = new Map<string, FulfilTried[]>();
  for (const f of h.fulfils) {
    if (f.status !== 200) continue;
    if (!successes.has(f.id)) successes.set(f.id, []);
    successes.get(f.id)!.push(f);
  }
  for (const [id, oks] of successes) {
    if (oks.length > 1) v.doubleFulfilled.push(id);
    const claims = claimsOf.get(id) ?? [];
    for (const ok of oks) {
      const own = claims.find((c) => c.token === ok.token);
      if (!own) {
        v.unknownTokens.push(id);
        continue;
      }
      // Another claim handed out after this token's and before this fulfil was sent.
      if (claims.some((c) => c.token !== ok.token && c.at > own.at && c.at < ok.sentAt)) {
        v.staleSuccesses.push(id);
      }
      const f = h.finals.get(id);
      if (f?.status !== 'fulfilled' || f.result !== ok.token) v.undurable.push(id);
    }
  }
  return v;
}
