/**
 * Wake-ups across bus nodes that share one PostgreSQL database, through LISTEN/NOTIFY.
 *
 * Every announcement (claimable at t, finished, a key revoked) is handed to this node at
 * once and queued for the other nodes (a claimable intent that a claim waiting here takes
 * is not: one publish wakes one claim across the bus); the queue is sent at the end of the event-loop turn as a few
 * NOTIFY messages on one dedicated connection, which also LISTENs. A node feeds what it
 * hears from the others into its own hub, so a publish on node A wakes a claimer waiting
 * on node B. Notifications are advisory: the store stays the truth, and a woken waiter
 * claims through it like any other.
 *
 * What a lost connection costs: notifications sent while a node was not listening are not
 * replayed by PostgreSQL. So when the connection comes back, the node tells every node
 * (itself included) to resynchronise: waiting claims re-run their claim, result waits
 * re-read the intent, and the schedule of future run_ats is reloaded from the store.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Log } from '../core/log.js';
import pg from 'pg';
import type { Visibility } from '@intent-bus/protocol';
import type { ClaimableEvent, IntentEvent, NodeWake, WakeBus } from './announce.js';

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7500;
/** NOTIFY payloads sent in one statement; the rest wait for the next one. */
const MAX_PAYLOADS_PER_SEND = 32;
/** Events queued past it are dropped and replaced by one resync message. */
const MAX_QUEUED = 10_000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

/** One announcement on the wire: claimable, finished, key revoked, or "resynchronise". */
type WireEvent =
  | ['c', number, string, string, string, Visibility, string, string | null, string | null]
  | ['f', string]
  | ['k', string]
  /** Flow control: a slot of the goal came free, or (null) the namespace's controls changed. */
  | ['w', string, string | null]
  | ['e', IntentEvent]
  | ['r'];

interface WireMessage {
  /** The sending node, so that a node ignores its own messages. */
  n: string;
  e: WireEvent[];
}

export interface PgWakeRelayOptions {
  connectionString: string;
  /** The bus's schema: buses in separate schemas of one database do not hear each other. */
  schema?: string | null;
  /** This node: what it hears from the others goes there, as do its own announcements. */
  local: NodeWake;
  log: Log;
}

/** The NOTIFY channel of the bus in `schema` (a channel is database-wide). */
export function wakeChannel(schema: string | null | undefined): string {
  if (schema == null) return 'intent_bus_wake';
  return `intent_bus_wake_${createHash('sha256').update(schema).digest('hex').slice(0, 24)}`;
}

export class PgWakeRelay implements WakeBus {
  readonly node = randomBytes(8).toString('hex');
  /** How each message of this node begins. */
  private readonly head = `{"n":"${this.node}","e":[`;
  private readonly channel: string;
  private client: pg.Client | null = null;
  private queue: string[] = [];
  private resyncQueued = false;
  private flushScheduled = false;
  /** A NOTIFY statement is on its way: the next waits for its answer. */
  private sending = false;
  private reconnectMs = RECONNECT_MIN_MS;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private everConnected = false;
  private closed = false;

  constructor(private readonly o: PgWakeRelayOptions) {
    this.channel = wakeChannel(o.schema);
    // Not listening yet.
    o.local.hearing(false);
  }

  /** Whether this node hears the other nodes now (shown by /health). */
  get state(): 'listening' | 'reconnecting' {
    return this.client != null ? 'listening' : 'reconnecting';
  }

  /** Connects and listens; on failure keeps retrying in the background. */
  async start(): Promise<void> {
    await this.connect();
  }

  claimable(event: ClaimableEvent, at: number): void {
    // A claim waiting on this node takes it: waking one on every other node as well would
    // only add claims that find nothing (one publish, one woken claim across the bus). If
    // that claim takes something else instead, it passes the event on (ops/claim.ts), and
    // it comes back here to go to the other nodes.
    if (this.o.local.claimable(event, at)) return;
    const e = event;
    this.enqueue(
      JSON.stringify([
        'c',
        at,
        e.id,
        e.namespace,
        e.goal,
        e.visibility,
        e.publisher,
        e.targetWorker,
        e.requiredCapability,
      ] satisfies WireEvent),
    );
  }

  finished(id: string): void {
    this.o.local.finished(id);
    this.enqueue(JSON.stringify(['f', id] satisfies WireEvent));
  }

  keyRevoked(keyId: string): void {
    this.o.local.keyRevoked(keyId);
    this.enqueue(JSON.stringify(['k', keyId] satisfies WireEvent));
  }

  flow(namespace: string, goal: string | null): void {
    this.o.local.flow(namespace, goal);
    this.enqueue(JSON.stringify(['w', namespace, goal] satisfies WireEvent));
  }

  intentEvent(event: IntentEvent): void {
    this.o.local.intentEvent(event);
    this.enqueue(JSON.stringify(['e', event] satisfies WireEvent));
  }

  resync(): void {
    this.o.local.resync();
    if (this.closed) return;
    this.resyncQueued = true;
    this.scheduleFlush();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private enqueue(encoded: string): void {
    if (this.closed) return;
    if (this.queue.length >= MAX_QUEUED) {
      // The other nodes will re-read the store instead of hearing each event.
      this.queue = [];
      this.resyncQueued = true;
    } else this.queue.push(encoded);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Packs the queue into NOTIFY payloads and sends up to MAX_PAYLOADS_PER_SEND of them in
   * one statement. One statement at a time: a pg client queues the queries it is given
   * while one runs, which pg 8 warns about and pg 9 will refuse; the queue here is ours.
   */
  private flush(): void {
    const client = this.client;
    if (!client) return; // sent as a resync once connected again
    if (this.sending || !(this.resyncQueued || this.queue.length > 0)) return;
    const payloads: string[] = [];
    const head = this.head;
    while (
      payloads.length < MAX_PAYLOADS_PER_SEND &&
      (this.resyncQueued || this.queue.length > 0)
    ) {
      let body = '';
      if (this.resyncQueued) {
        body = JSON.stringify(['r'] satisfies WireEvent);
        this.resyncQueued = false;
      }
      let taken = 0;
      let bytes = head.length + body.length + 2;
      for (; taken < this.queue.length; taken++) {
        // Ids, namespaces and goals are limited in length, a progress's message and data
        // too (1.2 KB with its escapes at most 2.5 KB): one event always fits.
        const next = Buffer.byteLength(this.queue[taken]!) + 1;
        if (body !== '' && bytes + next > MAX_PAYLOAD_BYTES) break;
        body += (body === '' ? '' : ',') + this.queue[taken];
        bytes += next;
      }
      this.queue.splice(0, taken);
      payloads.push(`${head}${body}]}`);
    }
    const calls = payloads.map((_, i) => `pg_notify($1, $${i + 2})`).join(', ');
    this.sending = true;
    client
      .query(`SELECT ${calls}`, [this.channel, ...payloads])
      .catch((err: unknown) => {
        // What was in it is lost: the other nodes re-read the store instead (a broken
        // connection is also reported by its 'error' event, which reconnects).
        if (this.closed) return;
        this.resyncQueued = true;
        this.o.log.warn({ err: { message: (err as Error).message } }, 'wake relay: send failed');
      })
      .finally(() => {
        this.sending = false;
        if (this.queue.length > 0 || this.resyncQueued) this.scheduleFlush();
      });
  }

  private receive(payload: string | undefined): void {
    // This node's own messages come back too (it listens on the channel it sends on).
    if (this.closed || payload === undefined || payload.startsWith(this.head)) return;
    let msg: WireMessage;
    try {
      msg = JSON.parse(payload) as WireMessage;
    } catch {
      return; // not ours: someone else NOTIFYing on the channel
    }
    if (msg.n === this.node || !Array.isArray(msg.e)) return;
    for (const e of msg.e) {
      if (e[0] === 'c') {
        const [, at, id, namespace, goal, visibility, publisher, targetWorker, cap] = e;
        this.o.local.claimable(
          { id, namespace, goal, visibility, publisher, targetWorker, requiredCapability: cap },
          at,
        );
      } else if (e[0] === 'f') this.o.local.finished(e[1]);
      else if (e[0] === 'k') this.o.local.keyRevoked(e[1]);
      else if (e[0] === 'w') this.o.local.flow(e[1], e[2]);
      else if (e[0] === 'e') this.o.local.intentEvent(e[1]);
      else if (e[0] === 'r') this.o.local.resync();
    }
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.o.connectionString,
      // A NOTIFY changes no data: its transaction need not wait for the WAL flush.
      options: '-c synchronous_commit=off',
    });
    let failed = false;
    const lost = (err: Error | null): void => {
      if (failed) return;
      failed = true;
      if (this.client === client) this.client = null;
      this.o.local.hearing(false);
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.o.log.warn(
        { err: err && { message: err.message }, retryInMs: this.reconnectMs },
        'wake relay: not listening to other nodes; reconnecting',
      );
      this.reconnectTimer = setTimeout(() => void this.connect(), this.reconnectMs);
      this.reconnectTimer.unref();
      this.reconnectMs = Math.min(this.reconnectMs * 2, RECONNECT_MAX_MS);
    };
    client.on('error', lost);
    client.on('end', () => lost(null));
    client.on('notification', (m) => {
      if (m.channel === this.channel) this.receive(m.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
    } catch (err) {
      lost(err as Error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.sending = false; // a statement on the lost connection is not waited for
    this.reconnectMs = RECONNECT_MIN_MS;
    this.o.local.hearing(true);
    if (this.everConnected) {
      // What was announced while this node was deaf, it learns from the store; what it
      // announced while it could not send, the others learn the same way.
      this.o.log.info('wake relay: listening again; resynchronising');
      this.o.local.resync();
      this.queue = [];
      this.resyncQueued = true;
    }
    this.everConnected = true;
    this.scheduleFlush();
  }
}
