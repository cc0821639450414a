/**
 * The event streams of this node (GET /events [ext], issue 20): every change of an intent
 * announced here or heard from another node, numbered in the order this node learnt it and
 * kept in a ring of the last `window` events, and the streams that read them.
 *
 * An event's id is `<node>-<n>`: `node` is drawn when the bus starts, `n` counts this
 * node's events from 1. A stream that resumes (Last-Event-ID) on the node that gave the id,
 * within the window, gets every event after it; any other id (older than the window, from
 * another node or from before a restart) gets a gap event first, so that the client reads
 * the intents it cares about again.
 */
import { randomBytes } from 'node:crypto';
import type { IntentEvent } from './announce.js';

/** Who reads a stream and what it asked for. */
export interface StreamFilter {
  keyId: string;
  isMain: boolean;
  namespace: string | null;
  goal: string | null;
  id: string | null;
}

/** A numbered event. */
export interface NumberedEvent {
  seq: number;
  event: IntentEvent;
}

/** One reader: told of each event it may see. */
export interface StreamReader {
  readonly filter: StreamFilter;
  deliver(e: NumberedEvent): void;
  /** The bus is stopping: the stream ends. */
  end(): void;
}

/** What a stream is told first when it opens. */
export type StreamStart =
  | { kind: 'opened'; backlog: NumberedEvent[]; gap: boolean; close: () => void }
  | { kind: 'limit'; perKey: boolean };

export interface StreamLimits {
  /** Events kept for a resume. */
  window: number;
  maxStreams: number;
  maxStreamsPerKey: number;
}

/** Whether the reader of `f` may see `e`: exactly the rule of /status, and its filters. */
export function visibleTo(f: StreamFilter, e: IntentEvent): boolean {
  if (!(f.isMain || e.publisher === f.keyId || e.claimer === f.keyId)) return false;
  if (f.id !== null && e.id !== f.id) return false;
  if (f.namespace !== null && e.namespace !== f.namespace) return false;
  return f.goal === null || e.goal === f.goal;
}

export class EventStreams {
  /** This node's prefix of event ids, new at every start. */
  readonly node = randomBytes(4).toString('hex');
  private readonly ring: (NumberedEvent | undefined)[];
  private seq = 0;
  private readonly readers = new Set<StreamReader>();
  private readonly perKey = new Map<string, number>();

  constructor(private readonly limits: StreamLimits) {
    this.ring = new Array<NumberedEvent | undefined>(Math.max(1, limits.window));
  }

  /** Open streams on this node (the metrics gauge). */
  get connections(): number {
    return this.readers.size;
  }

  /** The id of an event on the wire. */
  idOf(seq: number): string {
    return `${this.node}-${seq}`;
  }

  push(event: IntentEvent): void {
    const e = { seq: ++this.seq, event };
    this.ring[e.seq % this.ring.length] = e;
    for (const r of this.readers) if (visibleTo(r.filter, event)) r.deliver(e);
  }

  /**
   * Opens a stream: refused over the caps; else the events after `lastEventId` it may
   * see (a gap when they are not all kept), from then on each new one.
   */
  open(reader: StreamReader, lastEventId: string | null): StreamStart {
    const key = reader.filter.keyId;
    const mine = this.perKey.get(key) ?? 0;
    if (!reader.filter.isMain && mine >= this.limits.maxStreamsPerKey)
      return { kind: 'limit', perKey: true };
    if (this.readers.size >= this.limits.maxStreams) return { kind: 'limit', perKey: false };
    let backlog: NumberedEvent[] = [];
    let gap = false;
    if (lastEventId !== null) {
      const after = this.seqOf(lastEventId);
      const oldest = Math.max(1, this.seq - this.ring.length + 1);
      if (after === null || after < oldest - 1) gap = true;
      else
        for (let s = after + 1; s <= this.seq; s++) {
          const e = this.ring[s % this.ring.length]!;
          if (visibleTo(reader.filter, e.event)) backlog.push(e);
        }
    }
    if (gap) backlog = [];
    this.readers.add(reader);
    this.perKey.set(key, mine + 1);
    let closed = false;
    return {
      kind: 'opened',
      backlog,
      gap,
      close: () => {
        if (closed) return;
        closed = true;
        this.readers.delete(reader);
        const n = (this.perKey.get(key) ?? 1) - 1;
        if (n <= 0) this.perKey.delete(key);
        else this.perKey.set(key, n);
      },
    };
  }

  /** Ends the streams of a revoked key. */
  endKey(keyId: string): void {
    for (const r of [...this.readers]) if (r.filter.keyId === keyId) r.end();
  }

  /** Ends every stream (the bus is stopping). */
  closeAll(): void {
    for (const r of [...this.readers]) r.end();
  }

  /** The number of an id this node gave, or null (another node's, a former start's, junk). */
  private seqOf(id: string): number | null {
    const dash = id.lastIndexOf('-');
    if (dash < 0 || id.slice(0, dash) !== this.node) return null;
    const n = Number(id.slice(dash + 1));
    return Number.isSafeInteger(n) && n >= 0 && n <= this.seq ? n : null;
  }
}
