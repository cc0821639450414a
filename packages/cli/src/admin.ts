/** `intent-bus admin …`: the admin API of PROTOCOL.md §6. */
import { withRawMembers } from '@intent-bus/sdk';
import { indentJson, plural, UsageError } from './output.js';
import type { Command, Context } from './commands.js';
import { goalLines, workerLines } from './workers.js';

type Admin = ReturnType<Context['adminClient']>['admin'];

/** One `admin` subcommand: its words, its arguments, what it does, and how. */
interface Subcommand {
  words: string;
  /** Positional arguments after the words, each required (`[-n NS]`-style flags aside). */
  args: string[];
  /** The rest of its usage line (flags), if any. */
  flags?: string;
  summary: string;
  run(ctx: Context, api: Admin, args: string[]): Promise<void>;
}

const namespaceOf = (ctx: Context): { namespace?: string } => {
  const ns = ctx.values.namespace as string | undefined;
  return ns ? { namespace: ns } : {};
};

const keyIdOf = (ctx: Context): { keyId?: string } => {
  const k = ctx.values['key-id'] as string | undefined;
  return k ? { keyId: k } : {};
};

/** The admin API of PROTOCOL.md §6, one row per subcommand (usage and dispatch come from it). */
const SUBCOMMANDS: Subcommand[] = [
  {
    words: 'keys create',
    args: ['OWNER'],
    summary: 'mint a tester key (shown once)',
    async run(ctx, api, [owner]) {
      const k = await api.generateKey(owner!);
      ctx.out.result(
        k,
        () => `${k.api_key}\n(key_id ${k.key_id}, owner ${k.owner}; the key is shown only now)`,
      );
    },
  },
  {
    words: 'keys revoke',
    args: ['KEY'],
    summary: 'revoke by the key itself or its key_id (kid_…)',
    async run(ctx, api, [k]) {
      const r = await api.revokeKey(k!.startsWith('kid_') ? { keyId: k! } : { apiKey: k! });
      ctx.out.result(r, () => 'revoked');
    },
  },
  {
    words: 'keys list',
    args: [],
    summary: 'live keys: key_id, owner, prefix, usage',
    async run(ctx, api) {
      const keys = await api.keys();
      ctx.out.result(keys, () =>
        keys.length === 0
          ? 'no tester keys'
          : keys
              .map((k) => `${k.key_id}  ${k.prefix}…  ${k.owner}  ${plural(k.requests, 'request')}`)
              .join('\n'),
      );
    },
  },
  {
    words: 'dead list',
    args: [],
    flags: '[-n NS]',
    summary: 'the newest dead letters',
    async run(ctx, api) {
      const dead = await api.deadLetters(namespaceOf(ctx));
      ctx.out.result(dead, () =>
        dead.length === 0
          ? 'no dead letters'
          : dead
              .map(
                (d) =>
                  `${d.intent_id}  ${d.namespace}/${d.goal}  ${plural(d.attempts, 'attempt')}  ${d.reason}`,
              )
              .join('\n'),
      );
    },
  },
  {
    words: 'dead show',
    args: ['ID'],
    summary: 'one dead letter with its payload',
    async run(ctx, api, [id]) {
      // As the bus answered, the payload's exact text spliced in last, where it was.
      const { payload, payloadText, ...d } = await api.deadLetter(id!);
      const answer = withRawMembers(d, { payload: payloadText });
      ctx.out.resultText(answer, () => indentJson(answer));
    },
  },
  {
    words: 'discard',
    args: ['ID'],
    summary: 'delete a dead letter for good (its intent too)',
    async run(ctx, api, [id]) {
      const r = await api.discardDead(id!);
      ctx.out.result(r, () => `${r.id}: discarded`);
    },
  },
  {
    words: 'show',
    args: ['ID'],
    summary: 'everything about an intent',
    async run(ctx, api, [id]) {
      const { payload, result, payloadText, resultText, ...i } = await api.intent(id!);
      const answer = withRawMembers(i, { payload: payloadText, result: resultText });
      ctx.out.resultText(answer, () => indentJson(answer));
    },
  },
  {
    words: 'retry',
    args: ['ID'],
    summary: 'back to open, attempts reset',
    async run(ctx, api, [id]) {
      const r = await api.retry(id!);
      ctx.out.result(r, () => `${r.id}: ${r.status}`);
    },
  },
  {
    words: 'cancel',
    args: ['ID'],
    summary: 'open or claimed → dead (cancelled)',
    async run(ctx, api, [id]) {
      const r = await api.cancel(id!);
      ctx.out.result(r, () => `${r.id}: ${r.status}`);
    },
  },
  {
    words: 'purge',
    args: [],
    flags: '[-n NS] --yes',
    summary: 'delete intents and dead letters (of one namespace)',
    async run(ctx, api) {
      if (ctx.values.yes !== true)
        throw new UsageError('purge deletes intents for good: add --yes');
      const r = await api.purge(namespaceOf(ctx));
      ctx.out.result(
        r,
        () =>
          `deleted ${plural(r.intents_deleted, 'intent')} (${plural(r.dead_letters_deleted, 'dead letter')})`,
      );
    },
  },
  {
    words: 'workers list',
    args: [],
    summary: "every key's workers, online first",
    async run(ctx, api) {
      const list = await api.workers();
      ctx.out.result(list, () => workerLines(list, true));
    },
  },
  ...(['quiet', 'stop', 'resume'] as const).map((command): Subcommand => ({
    words: `workers ${command}`,
    args: ['ID'],
    flags: '[--key-id KID]',
    summary: {
      quiet: 'the worker claims nothing more until resumed',
      stop: 'the worker finishes its jobs, then exits',
      resume: 'clears quiet or stop',
    }[command],
    async run(ctx, api, [id]) {
      const r = await api.commandWorker(id!, command, keyIdOf(ctx));
      ctx.out.result(r, () => `${plural(r.workers.length, 'worker')} ${id}: ${command}`);
    },
  })),
  {
    words: 'workers forget',
    args: ['ID'],
    flags: '[--key-id KID]',
    summary: 'drop a worker from the lists (seen again if it runs)',
    async run(ctx, api, [id]) {
      const r = await api.forgetWorker(id!, keyIdOf(ctx));
      ctx.out.result(r, () => `${plural(r.workers.length, 'worker')} ${id}: forgotten`);
    },
  },
  {
    words: 'goals',
    args: [],
    summary: 'counts per goal, and why open intents wait',
    async run(ctx, api) {
      const goals = await api.goals();
      ctx.out.result(goals, () => goalLines(goals));
    },
  },
  {
    words: 'flow set',
    args: ['NS', 'GOAL'],
    flags: '[--pause|--resume] [--max-in-flight N|none] [--rate N/S|none]',
    summary: 'pause a goal (* for the namespace), limit it in flight or by rate',
    async run(ctx, api, [ns, goal]) {
      const c = await api.setFlow(ns!, goal!, flowChange(ctx));
      ctx.out.result(c, () => describeFlow(c));
    },
  },
  {
    words: 'flow list',
    args: [],
    summary: 'the flow controls: pauses, limits in flight, rates',
    async run(ctx, api) {
      const list = await api.flow();
      ctx.out.result(list, () =>
        list.length === 0 ? 'no flow controls' : list.map(describeFlow).join('\n'),
      );
    },
  },
  {
    words: 'flow remove',
    args: ['NS', 'GOAL'],
    summary: 'drop a flow control',
    async run(ctx, api, [ns, goal]) {
      const r = await api.removeFlow(ns!, goal!);
      ctx.out.result(r, () => `${ns}/${goal}: removed`);
    },
  },
  {
    words: 'cleanup',
    args: [],
    summary: 'run every housekeeping pass now',
    async run(ctx, api) {
      const r = await api.cleanup();
      ctx.out.result(r, () =>
        Object.entries(r)
          .filter(([k]) => k !== 'ok')
          .map(([k, n]) => `${k}: ${String(n)}`)
          .join('\n'),
      );
    },
  },
];

type FlowChange = Parameters<Admin['setFlow']>[2];
type FlowAnswer = Awaited<ReturnType<Admin['setFlow']>>;

/** `flow set`'s flags → the change (a flag not given leaves its member as it is). */
function flowChange(ctx: Context): FlowChange {
  const v = ctx.values;
  if (v.pause === true && v.resume === true)
    throw new UsageError('--pause and --resume: one or the other');
  const change: FlowChange = {};
  if (v.pause === true) change.paused = true;
  if (v.resume === true) change.paused = false;
  const mif = v['max-in-flight'] as string | undefined;
  if (mif !== undefined) {
    if (mif === 'none') change.max_in_flight = null;
    else if (/^[1-9][0-9]*$/.test(mif)) change.max_in_flight = Number(mif);
    else throw new UsageError('--max-in-flight: a whole number of at least 1, or none');
  }
  const rate = v.rate as string | undefined;
  if (rate !== undefined) {
    const m = /^([1-9][0-9]*)\/([1-9][0-9]*)$/.exec(rate);
    if (rate === 'none') change.rate = null;
    else if (m) change.rate = { limit: Number(m[1]), per: Number(m[2]) };
    else throw new UsageError('--rate: N/S (N claims per S seconds, e.g. 5/1), or none');
  }
  if (Object.keys(change).length === 0)
    throw new UsageError('flow set: give --pause, --resume, --max-in-flight or --rate');
  return change;
}

function describeFlow(c: FlowAnswer): string {
  const parts = [
    c.paused ? 'paused' : null,
    c.max_in_flight != null ? `at most ${c.max_in_flight} in flight` : null,
    c.rate ? `at most ${c.rate.limit} per ${c.rate.per} s` : null,
  ].filter(Boolean);
  return `${c.namespace}/${c.goal}  ${parts.length > 0 ? parts.join(', ') : 'no control (removed)'}`;
}

const synopsis = (c: Subcommand): string =>
  ['intent-bus admin', c.words, ...c.args, c.flags].filter(Boolean).join(' ');
const WIDTH = Math.max(...SUBCOMMANDS.map((c) => synopsis(c).length)) + 3;

export const admin: Command = {
  name: 'admin',
  summary: 'keys, dead letters, retry, cancel, purge, workers, goals, cleanup, flow control',
  usage: SUBCOMMANDS.map((c) => synopsis(c).padEnd(WIDTH) + c.summary).join('\n'),
  options: {
    namespace: { type: 'string', short: 'n' },
    yes: { type: 'boolean' },
    'key-id': { type: 'string' },
    pause: { type: 'boolean' },
    resume: { type: 'boolean' },
    'max-in-flight': { type: 'string' },
    rate: { type: 'string' },
  },
  async run(ctx) {
    const words = ctx.positionals;
    const sub = SUBCOMMANDS.find((c) => {
      const w = c.words.split(' ');
      return w.every((x, i) => words[i] === x);
    });
    if (!sub) throw new UsageError(`unknown admin command: ${words.join(' ') || '(none)'}`);
    const args = words.slice(sub.words.split(' ').length);
    if (args.length !== sub.args.length)
      throw new UsageError(`expected: ${synopsis(sub).slice(11)}`);
    await sub.run(ctx, ctx.adminClient().admin, args);
  },
};
