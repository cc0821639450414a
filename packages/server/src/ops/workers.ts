/**
 * The fleet (issue 18): which workers are out there, what they hold, and what an admin told
 * them. A worker is its worker id under its key. Every claim, extend, fulfil and fail that
 * names a worker is seen here, in memory, at no store cost; `flush` (housekeeping, every
 * `flushIntervalMs`) writes what changed in one atomic step, one row per worker, so a
 * worker costs the store at most one write per interval however many requests it makes.
 * Every node writes what it saw and lists from the store, so every node lists every worker;
 * what this node saw since its last write is added to the stored rows when it lists.
 *
 * Commands (quiet, stop) are kept in the store. This node knows its own at once; on several
 * nodes it reads everyone's again every `commandRecheckMs`, and ends the waiting claims of a
 * worker that has just been told, so a command reaches a worker on any node within about a
 * second.
 */
import { matchesClaim, type ClaimFilter } from '../core/routing.js';
import type { Store, WorkerCommand, WorkerRecord, WorkerRef, WorkerSave } from '../store/store.js';

/** One namespace, goal (null: any) and publisher filter (null: public or mine) asked for. */
export type Ask = [namespace: string, goal: string | null, publisher: string | null];

/** The asks kept per worker, newest first. */
const MAX_ASKS = 16;
/** On several nodes, how often each reads the commands again. */
export const COMMAND_RECHECK_MS = 500;
/** The longest between two writes of a worker's sightings. */
const MAX_FLUSH_MS = 2000;

/** Who made a request: its User-Agent and address (BUS_TRUST_PROXY rules, as req.ip). */
export interface Sighting {
  userAgent: string | null;
  address: string | null;
}

/** What this node saw of a worker and has not written yet, and its claims waiting here. */
interface Live {
  keyId: string;
  workerId: string;
  capabilities: string[] | null;
  asks: Ask[] | null;
  userAgent: string | null;
  address: string | null;
  firstSeen: number;
  lastSeen: number;
  fulfilled: number;
  failed: number;
  lastError: string | null;
  /** Something to write. */
  dirty: boolean;
  /** Claims of this worker waiting on this node now. */
  waiting: number;
  /** When this node last wrote it (0: never). */
  writtenAt: number;
}

export type WorkerStatus = 'online' | 'busy' | 'offline';

/** A claimed intent a worker holds. */
export interface Held {
  id: string;
  namespace: string;
  goal: string;
  claimExpiresAt: number;
}

/** A worker as listed: the stored row with this node's unwritten part added. */
export interface WorkerView {
  keyId: string;
  workerId: string;
  status: WorkerStatus;
  online: boolean;
  command: WorkerCommand | null;
  capabilities: string[];
  asks: Ask[];
  userAgent: string | null;
  address: string | null;
  firstSeen: number;
  lastSeen: number;
  fulfilled: number;
  failed: number;
  lastError: string | null;
  holds: Held[];
}

export interface RegistryOptions {
  store: Store;
  /** Seen within this long, a worker is online. */
  onlineWindowMs: number;
  /** Ends the waiting claims of a worker (wake/hub.ts), so that they read its command. */
  wakeWorker: (keyId: string, workerId: string) => void;
  /** Several nodes share the store: read the commands again now and then. */
  sharedByNodes: boolean;
  now: () => number;
}

const refKey = (keyId: string, workerId: string): string => `${keyId}\n${workerId}`;

function parseList<T>(text: string): T[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? (v as T[]) : [];
  } catch {
    return [];
  }
}

export class WorkerRegistry {
  private live = new Map<string, Live>();
  private commands = new Map<string, WorkerCommand>();
  /** Store writes made: flushes, and worker rows written (each one statement). */
  readonly writes = { flushes: 0, rows: 0 };
  readonly flushIntervalMs: number;

  constructor(private readonly o: RegistryOptions) {
    // A worker waiting on another node is kept fresh by that node's flushes: at least two
    // of them fall within the online window.
    this.flushIntervalMs = Math.max(100, Math.min(MAX_FLUSH_MS, Math.floor(o.onlineWindowMs / 2)));
  }

  private entry(keyId: string, workerId: string, now: number): Live {
    const k = refKey(keyId, workerId);
    let e = this.live.get(k);
    if (!e) {
      e = {
        keyId,
        workerId,
        capabilities: null,
        asks: null,
        userAgent: null,
        address: null,
        firstSeen: now,
        lastSeen: now,
        fulfilled: 0,
        failed: 0,
        lastError: null,
        dirty: true,
        waiting: 0,
        writtenAt: 0,
      };
      this.live.set(k, e);
    }
    return e;
  }

  private see(e: Live, seen: Sighting, now: number): void {
    e.lastSeen = Math.max(e.lastSeen, now);
    if (seen.userAgent != null) e.userAgent = seen.userAgent;
    if (seen.address != null) e.address = seen.address;
    e.dirty = true;
  }

  /** A claim of a named worker begins (it may wait); its command, if it has one. */
  claimBegins(filter: ClaimFilter, seen: Sighting, now: number): WorkerCommand | null {
    if (filter.workerId == null) return null;
    const e = this.entry(filter.keyId, filter.workerId, now);
    this.see(e, seen, now);
    e.capabilities = [...filter.capabilities];
    const ask: Ask = [filter.namespace, filter.goal, filter.publisher];
    const same = (a: Ask): boolean => a[0] === ask[0] && a[1] === ask[1] && a[2] === ask[2];
    e.asks = [ask, ...(e.asks ?? []).filter((a) => !same(a))].slice(0, MAX_ASKS);
    e.waiting++;
    return this.commandOf(filter.keyId, filter.workerId);
  }

  /** The claim answered (or its client left). */
  claimEnds(filter: ClaimFilter, now: number): void {
    if (filter.workerId == null) return;
    const e = this.entry(filter.keyId, filter.workerId, now);
    e.waiting = Math.max(0, e.waiting - 1);
    e.lastSeen = Math.max(e.lastSeen, now);
    e.dirty = true;
  }

  /** An extend, fulfil or fail of an intent this worker holds. */
  touched(
    keyId: string,
    workerId: string,
    seen: Sighting,
    now: number,
    outcome: { fulfilled?: boolean; failed?: boolean; error?: string | null } = {},
  ): void {
    const e = this.entry(keyId, workerId, now);
    this.see(e, seen, now);
    if (outcome.fulfilled) e.fulfilled++;
    if (outcome.failed) {
      e.failed++;
      if (outcome.error != null) e.lastError = outcome.error;
    }
  }

  commandOf(keyId: string, workerId: string | null): WorkerCommand | null {
    if (workerId == null) return null;
    return this.commands.get(refKey(keyId, workerId)) ?? null;
  }

  /**
   * Writes what changed since the last flush, one row per worker, in one atomic step. A
   * worker with a claim waiting here is written at least every half online window: its
   * last_seen stays fresh for the other nodes. On failure nothing is lost: the next flush
   * writes it.
   */
  async flush(now: number): Promise<void> {
    const batch: WorkerSave[] = [];
    const taken: Array<[Live, WorkerSave]> = [];
    for (const [k, e] of this.live) {
      if (!e.dirty) {
        // Waiting here and nothing new: written again once half the window has passed, so
        // that the other nodes still see it online (a fleet of idle long polls costs one
        // row per worker per half window, not per flush).
        if (e.waiting > 0) {
          if (now - e.writtenAt < this.o.onlineWindowMs / 2) continue;
          e.lastSeen = Math.max(e.lastSeen, now);
        } else {
          // Written, idle and out of the window: nothing left to keep here.
          if (e.lastSeen < now - this.o.onlineWindowMs) this.live.delete(k);
          continue;
        }
      } else if (e.waiting > 0) e.lastSeen = Math.max(e.lastSeen, now);
      const save: WorkerSave = {
        keyId: e.keyId,
        workerId: e.workerId,
        capabilities: e.capabilities == null ? null : JSON.stringify(e.capabilities),
        asks: e.asks == null ? null : JSON.stringify(e.asks),
        userAgent: e.userAgent,
        address: e.address,
        firstSeen: e.firstSeen,
        lastSeen: e.lastSeen,
        fulfilled: e.fulfilled,
        failed: e.failed,
        lastError: e.lastError,
      };
      batch.push(save);
      taken.push([e, save]);
      e.fulfilled = 0;
      e.failed = 0;
      e.lastError = null;
      e.dirty = false;
      e.writtenAt = now;
    }
    if (batch.length === 0) return;
    try {
      await this.o.store.workersSave(batch);
      this.writes.flushes++;
      this.writes.rows += batch.length;
    } catch (err) {
      // Not written: count it again next time.
      for (const [e, s] of taken) {
        e.fulfilled += s.fulfilled;
        e.failed += s.failed;
        e.lastError ??= s.lastError;
        e.dirty = true;
      }
      throw err;
    }
  }

  /** Reads every command from the store (several nodes); wakes the newly told workers. */
  async refreshCommands(): Promise<void> {
    const rows = await this.o.store.workersCommanded();
    const next = new Map(rows.map((r) => [refKey(r.keyId, r.workerId), r.command]));
    const told = rows.filter((r) => this.commands.get(refKey(r.keyId, r.workerId)) !== r.command);
    this.commands = next;
    for (const r of told) this.o.wakeWorker(r.keyId, r.workerId);
  }

  get sharedByNodes(): boolean {
    return this.o.sharedByNodes;
  }

  /** Sets or clears a command (the workers told), and ends their waiting claims here. */
  async command(
    workerId: string,
    keyId: string | null,
    command: WorkerCommand | null,
  ): Promise<WorkerRef[]> {
    await this.flushOne(workerId, keyId);
    const refs = await this.o.store.workerCommandSet(workerId, keyId, command);
    for (const r of refs) {
      const k = refKey(r.keyId, r.workerId);
      if (command == null) this.commands.delete(k);
      else this.commands.set(k, command);
      if (command != null) this.o.wakeWorker(r.keyId, r.workerId);
    }
    return refs;
  }

  /** A revoked key's workers: its rows went with it (Store.keyRevoke); forget them here. */
  forgetKey(keyId: string): void {
    for (const [k, e] of this.live) if (e.keyId === keyId) this.live.delete(k);
    for (const k of [...this.commands.keys()])
      if (k.startsWith(`${keyId}\n`)) this.commands.delete(k);
  }

  /** Forgets the workers of this id (a worker still running is seen again). */
  async forget(workerId: string, keyId: string | null): Promise<WorkerRef[]> {
    const refs = await this.o.store.workerForget(workerId, keyId);
    for (const r of refs) {
      const k = refKey(r.keyId, r.workerId);
      this.commands.delete(k);
      this.live.delete(k);
    }
    return refs;
  }

  /** A worker seen only here so far is written first, so that a command finds its row. */
  private async flushOne(workerId: string, keyId: string | null): Promise<void> {
    const unwritten = [...this.live.values()].some(
      (e) => e.workerId === workerId && (keyId == null || e.keyId === keyId) && e.dirty,
    );
    if (unwritten) await this.flush(this.o.now());
  }

  /** The workers of a key (null: every key), as stored plus what this node has not written. */
  async list(keyId: string | null, now: number): Promise<WorkerView[]> {
    const [rows, held] = await Promise.all([
      this.o.store.workersList(keyId),
      this.o.store.intentsHeld(keyId),
    ]);
    const byRef = new Map<string, WorkerRecord>(rows.map((r) => [refKey(r.keyId, r.workerId), r]));
    const holds = new Map<string, Held[]>();
    for (const h of held) {
      const k = refKey(h.claimer, h.workerId);
      let list = holds.get(k);
      if (!list) holds.set(k, (list = []));
      list.push({
        id: h.id,
        namespace: h.namespace,
        goal: h.goal,
        claimExpiresAt: h.claimExpiresAt,
      });
    }
    const views: WorkerView[] = [];
    const seenHere = new Set<string>();
    for (const e of this.live.values()) {
      if (keyId != null && e.keyId !== keyId) continue;
      seenHere.add(refKey(e.keyId, e.workerId));
    }
    for (const k of new Set([...byRef.keys(), ...seenHere])) {
      const r = byRef.get(k);
      const e = this.live.get(k);
      if (!r && !e) continue;
      const newer = e != null && (r == null || e.lastSeen >= r.lastSeen);
      const lastSeen = Math.max(r?.lastSeen ?? 0, e?.lastSeen ?? 0);
      const held = holds.get(k) ?? [];
      const waitingHere = (e?.waiting ?? 0) > 0;
      const online = waitingHere || lastSeen >= now - this.o.onlineWindowMs;
      views.push({
        keyId: r?.keyId ?? e!.keyId,
        workerId: r?.workerId ?? e!.workerId,
        status: held.length > 0 ? 'busy' : online ? 'online' : 'offline',
        online: online || held.length > 0,
        command: r?.command ?? this.commands.get(k) ?? null,
        capabilities:
          (newer ? e?.capabilities : null) ?? (r ? parseList<string>(r.capabilities) : []),
        asks: (newer ? e?.asks : null) ?? (r ? parseList<Ask>(r.asks) : []),
        userAgent: (newer ? e?.userAgent : null) ?? r?.userAgent ?? e?.userAgent ?? null,
        address: (newer ? e?.address : null) ?? r?.address ?? e?.address ?? null,
        firstSeen: Math.min(r?.firstSeen ?? Infinity, e?.firstSeen ?? Infinity),
        lastSeen,
        fulfilled: (r?.fulfilled ?? 0) + (e?.fulfilled ?? 0),
        failed: (r?.failed ?? 0) + (e?.failed ?? 0),
        lastError: e?.lastError ?? r?.lastError ?? null,
        holds: held,
      });
    }
    // Online (busy first) before offline, then the latest seen first.
    const rank = (v: WorkerView): number =>
      v.status === 'busy' ? 0 : v.status === 'online' ? 1 : 2;
    return views.sort(
      (a, b) => rank(a) - rank(b) || b.lastSeen - a.lastSeen || (a.workerId < b.workerId ? -1 : 1),
    );
  }

  /** Whether a worker is online now: a claim of it waits here, or it was seen in the window. */
  async isOnline(keyId: string, workerId: string, now: number): Promise<boolean> {
    const e = this.live.get(refKey(keyId, workerId));
    const since = now - this.o.onlineWindowMs;
    if (e && (e.waiting > 0 || e.lastSeen >= since)) return true;
    const r = await this.o.store.workerGet(keyId, workerId);
    return r != null && r.lastSeen >= since;
  }

  /** Whether an online worker could claim an intent (core/routing.ts decides). */
  static couldClaim(w: WorkerView, intent: Parameters<typeof matchesClaim>[0]): boolean {
    return w.asks.some(([namespace, goal, publisher]) =>
      matchesClaim(intent, {
        keyId: w.keyId,
        namespace,
        goal,
        publisher,
        workerId: w.workerId,
        capabilities: w.capabilities,
      }),
    );
  }
}
