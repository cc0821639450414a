/**
 * Each node's copy of the flow controls (ops/flow.ts). A claim in a namespace without
 * controls must cost what it did before: every control is kept in memory (a handful of
 * rows), read again in the background once the copy is FLOW_RECHECK_MS old, and dropped at
 * once when a node announces a change (the wake relay carries it; a missed announcement is
 * bounded by the recheck, as the key cache's in http/auth.ts).
 */
import { performance } from 'node:perf_hooks';
import { WHOLE_NAMESPACE, type FlowControl } from '../core/flow.js';
import type { Store } from '../store/store.js';

/** How old a node's copy of the controls may be before it reads them again. */
export const FLOW_RECHECK_MS = 1000;

export class FlowGate {
  private byNamespace: Map<string, FlowControl[]> | null = null;
  private loadedAt = -Infinity;
  private loading: Promise<Map<string, FlowControl[]>> | null = null;
  /** Bumped by every forgetting: a read that started before it is not kept. */
  private generation = 0;

  constructor(private readonly store: Pick<Store, 'flowList'>) {}

  /**
   * The controls of a namespace ([] when none). Synchronous while the copy is fresh; a stale
   * copy is used while it is read again; after a change was announced the read is awaited.
   */
  of(namespace: string): readonly FlowControl[] | Promise<readonly FlowControl[]> {
    const known = this.byNamespace;
    if (known) {
      if (performance.now() - this.loadedAt >= FLOW_RECHECK_MS) void this.load().catch(() => {});
      return known.get(namespace) ?? NONE;
    }
    return this.load().then((m) => m.get(namespace) ?? NONE);
  }

  /**
   * The limit on what is in flight in the namespace, as far as this node knows: its own
   * (`namespace`), only its goals' (`goal`), or none.
   */
  inFlightLimit(namespace: string): 'namespace' | 'goal' | null {
    if (this.byNamespace === null) {
      // Not known yet: read in the background (a claim waiting for the slot also looks
      // again after IN_FLIGHT_RETRY_MS), never making the caller wait or fail.
      void this.load().catch(() => {});
      return null;
    }
    const set = this.of(namespace);
    if (!Array.isArray(set)) return null;
    const limited = set.filter((c) => c.maxInFlight != null);
    if (limited.some((c) => c.goal === WHOLE_NAMESPACE)) return 'namespace';
    return limited.length > 0 ? 'goal' : null;
  }

  /** A change was announced (or announcements were missed): read the controls again. */
  forget(): void {
    this.generation++;
    this.byNamespace = null;
    this.loading = null;
  }

  private load(): Promise<Map<string, FlowControl[]>> {
    if (this.loading) return this.loading;
    const generation = this.generation;
    const startedAt = performance.now();
    const loading = this.store.flowList().then(
      (list) => {
        const m = new Map<string, FlowControl[]>();
        for (const c of list) {
          const set = m.get(c.namespace);
          if (set) set.push(c);
          else m.set(c.namespace, [c]);
        }
        if (this.loading === loading) this.loading = null;
        if (generation === this.generation) {
          this.byNamespace = m;
          this.loadedAt = startedAt;
        }
        return m;
      },
      (err: unknown) => {
        if (this.loading === loading) this.loading = null;
        throw err;
      },
    );
    this.loading = loading;
    return loading;
  }
}

const NONE: readonly FlowControl[] = [];
