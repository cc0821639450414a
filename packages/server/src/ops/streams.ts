/**
 * GET /events [ext] (issue 20): a key's stream of the changes of the intents it may read.
 * The route hands over a sink once the stream is admitted (caps: per key, per node); from
 * then on this writes the events, a comment every 15 s, and cuts a reader that leaves more
 * than `streamBufferBytes` unread, with a last `cut` event saying why.
 */
import { BusError } from '../core/errors.js';
import type { Principal } from '../core/principal.js';
import type { IntentEvent } from '../wake/announce.js';
import type { NumberedEvent, StreamFilter } from '../wake/streams.js';
import type { OpsContext } from './context.js';

/** A comment line this often keeps proxies from closing an idle stream. */
export const KEEPALIVE_MS = 15_000;

/** Where a stream's text goes: a write answers the bytes the reader has not taken yet. */
export interface StreamSink {
  write(text: string): number;
  end(): void;
  /** Called once when the reader goes. */
  onClose(listener: () => void): void;
}

/** An event's data as JSON text: its progress's data exactly as the worker sent it. */
export function eventData(e: IntentEvent): string {
  const out = {
    type: e.type,
    id: e.id,
    namespace: e.namespace,
    goal: e.goal,
    status: e.status,
    claim_attempts: e.attempts,
    at: e.at / 1000,
    dead_reason: e.deadReason,
  };
  let text = JSON.stringify(out);
  if (e.progress) {
    const p = e.progress;
    const head = JSON.stringify({ percent: p.percent, message: p.message, at: p.at / 1000 });
    text = `${text.slice(0, -1)},"progress":${head.slice(0, -1)},"data":${p.data ?? 'null'}}}`;
  } else text = `${text.slice(0, -1)},"progress":null}`;
  return text;
}

const record = (id: string, type: string, data: string): string =>
  `id: ${id}\nevent: ${type}\ndata: ${data}\n\n`;

export function openEventStream(
  ctx: OpsContext,
  p: Principal,
  filter: Omit<StreamFilter, 'keyId' | 'isMain'>,
  lastEventId: string | null,
  start: () => StreamSink,
): void {
  const streams = ctx.streams;
  const limit = ctx.config.streamBufferBytes;
  let sink: StreamSink | null = null;
  let ended = false;
  let timer: NodeJS.Timeout | null = null;
  let close = (): void => {};
  const finish = (): void => {
    if (ended) return;
    ended = true;
    if (timer) clearInterval(timer);
    close();
    sink?.end();
  };
  const send = (text: string): void => {
    if (ended || !sink) return;
    if (sink.write(text) > limit) {
      // A slow reader: told why, then cut (its unread events are not kept for it).
      sink.write(
        `event: cut\ndata: ${JSON.stringify({ reason: 'slow_reader', unread_bytes_limit: limit })}\n\n`,
      );
      finish();
    }
  };
  const deliver = (e: NumberedEvent): void =>
    send(record(streams.idOf(e.seq), e.event.type, eventData(e.event)));
  const opened = streams.open(
    {
      filter: { ...filter, keyId: p.keyId, isMain: p.isMain },
      deliver,
      end: finish,
    },
    lastEventId,
  );
  if (opened.kind === 'limit') {
    throw new BusError(
      'too_many_streams',
      opened.perKey
        ? `This key has ${ctx.config.maxStreamsPerKey} event streams open on this node`
        : `This node has ${ctx.config.maxStreams} event streams open`,
      { retryAfterSeconds: 5 },
    );
  }
  close = opened.close;
  sink = start();
  sink.onClose(finish);
  // The retry interval an EventSource waits before it reconnects.
  send(`retry: 1000\n: intent-bus events, node ${streams.node}\n\n`);
  if (opened.gap) {
    send(
      `event: gap\ndata: ${JSON.stringify({ last_event_id: lastEventId, reason: 'Events after this id are no longer kept here: read the intents again' })}\n\n`,
    );
  }
  for (const e of opened.backlog) deliver(e);
  timer = setInterval(() => send(': keep-alive\n\n'), KEEPALIVE_MS);
  timer.unref();
}
