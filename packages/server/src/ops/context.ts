/**
 * What an operation is given: the parts of the bus below HTTP. Routes (http/routes/) parse
 * a request, call one operation and answer with what it returns; housekeeping uses the same
 * store and events. Waiting, deciding what a request may do and announcing state changes
 * happen here, so that no route does any of it itself.
 */
import type { Clock, Random } from '../core/clock.js';
import type { Principal } from '../core/principal.js';
import type { Config } from '../config.js';
import type { BusEvents } from '../events.js';
import type { Store } from '../store/store.js';
import type { Leaving, WaiterHub } from '../wake/hub.js';
import type { EventStreams } from '../wake/streams.js';
import type { ProgressWriter } from './progress.js';
import type { WorkerRegistry } from './workers.js';
import type { FlowGate } from './flow-gate.js';

/** How an operation asks about keys (http/auth.ts's Authenticator is one). */
export interface KeyLookup {
  /** The key id behind a raw key, or null. */
  lookup(rawKey: string): Principal | null | Promise<Principal | null>;
  /** Whether a principal admitted earlier is still live (a revoke may have come since). */
  stillValid(principal: Principal): boolean | Promise<boolean>;
}

/** The client of a request that may wait: whether it has gone, and the signal of it. */
export interface Requester extends Leaving {
  readonly gone: boolean;
}

export interface OpsContext {
  config: Config;
  store: Store;
  /** Where every change of state is announced (wake-ups, metrics), here and to other nodes. */
  events: BusEvents;
  /** This node's waiting requests. */
  hub: WaiterHub;
  clock: Clock;
  random: Random;
  keys: KeyLookup;
  /** The workers this node has seen, and the commands an admin gave them (ops/workers.ts). */
  workers: WorkerRegistry;
  /** This node's copy of the flow controls (ops/flow.ts). */
  flow: FlowGate;
  /** This node's event streams (GET /events [ext], issue 20). */
  streams: EventStreams;
  /** Progress reports, at most one store write per intent per second (ops/progress.ts). */
  progress: ProgressWriter;
}
