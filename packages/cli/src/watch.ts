/**
 * [ext] `intent-bus watch`: tails the bus's event stream (GET /events, issue 20), one line
 * per change of an intent this key may read; the SDK opens it again after a drop.
 */
import type { IntentEvent, StreamRecord } from '@intent-bus/sdk';
import type { Command } from './commands.js';
import { progressText } from './follow.js';
import { UsageError } from './output.js';

/** A change as people read it: time, type, intent, where, and what it says. */
export function eventLine(r: StreamRecord): string {
  if (r.event === 'gap') return '-- gap: older events are no longer kept; read the intents again';
  const e = r.data as IntentEvent;
  const time = new Date(e.at * 1000).toISOString().slice(11, 23);
  let line = `${time} ${e.type.padEnd(9)} ${e.id} ${e.namespace}/${e.goal}`;
  if (e.type === 'progress' && e.progress) line += ` ${progressText(e.progress)}`;
  if (e.status === 'dead' && e.dead_reason) line += ` (${e.dead_reason})`;
  return line;
}

export const watch: Command = {
  name: 'watch',
  summary: "tail the bus's events (the changes of this key's intents)",
  usage: `intent-bus watch [-n NS] [--goal G] [--id ID] [--json]

  One line per change of an intent this key may read (the main key: every intent):
  published, claimed, progress, fulfilled, failed, dead, retried, cancelled, released.
  --json prints each event's data, one JSON object per line. Ctrl-C to stop.`,
  options: {
    namespace: { type: 'string', short: 'n' },
    goal: { type: 'string' },
    id: { type: 'string' },
  },
  async run(ctx) {
    if (ctx.positionals.length !== 0) throw new UsageError('watch takes no arguments');
    const v = ctx.values;
    const ac = new AbortController();
    const stop = (): void => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const stream = ctx.client().events(
        {
          namespace: v.namespace as string | undefined,
          goal: v.goal as string | undefined,
          id: v.id as string | undefined,
        },
        { signal: ac.signal },
      );
      for await (const r of stream) ctx.out.resultText(r.dataText, () => eventLine(r));
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};
