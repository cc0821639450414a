/** `intent-bus schedule …`: the key's schedules (issue 17), through client.schedules. */
import {
  withRawMembers,
  type ExactSchedule,
  type ExactScheduleDetail,
  type Schedule,
  type ScheduleSpec,
} from '@intent-bus/sdk';
import { jsonArg, numberArg, type Command, type Context } from './commands.js';
import { EXIT, Exit, indentJson, plural, UsageError } from './output.js';

const iso = (s: number | null): string => (s === null ? '-' : new Date(s * 1000).toISOString());

/** A schedule answer's JSON text, the runs' payload spliced in as the bus sent it. */
function answerText(s: ExactSchedule | ExactScheduleDetail): string {
  const { payloadText, onFailureText, intent, on_failure: _onFailure, ...rest } = s;
  const { payload: _payload, ...fields } = intent;
  const out = rest as Record<string, unknown>;
  delete out.created;
  return withRawMembers(out, {
    intent: withRawMembers(fields, { payload: payloadText }),
    on_failure: onFailureText,
  });
}

const line = (s: Schedule): string =>
  `${s.name}  ${s.description}  ${s.paused ? 'paused' : `next ${iso(s.next_run_at)}`}  → ${s.intent.goal}`;

function human(s: ExactSchedule | ExactScheduleDetail): string {
  const lines = [
    `schedule:  ${s.name}`,
    `when:      ${s.description} (${s.cron !== null ? `cron ${s.cron}` : `every ${s.every} s`})`,
    `publishes: ${s.intent.goal} (namespace ${s.intent.namespace ?? 'default'})`,
    `payload:   ${indentJson(s.payloadText)}`,
    `overlap:   ${s.overlap}, catch-up ${s.catch_up}`,
    `deadline:  ${s.deadline === null ? 'none' : `${s.deadline} s after each tick`}`,
    `on failure: ${
      s.on_failure === null
        ? 'no alert'
        : `alert ${s.on_failure.goal} (namespace ${s.on_failure.namespace ?? 'default'})`
    }`,
    `state:     ${s.paused ? 'paused' : `active, next run ${iso(s.next_run_at)}`}`,
  ];
  if ('runs' in s) {
    if (s.next_runs.length > 0)
      lines.push(`next runs: ${s.next_runs.map(iso).join('\n           ')}`);
    lines.push(
      s.runs.length === 0
        ? 'runs:      none yet'
        : `runs:      ${s.runs
            .map(
              (r) =>
                `${iso(r.scheduled_for)}  ${r.outcome.padEnd(9)}  ${r.id}` +
                (r.outcome !== r.status ? `  (${r.status})` : '') +
                (r.alert_id !== null ? `  alert ${r.alert_id}` : ''),
            )
            .join('\n           ')}`,
    );
  }
  return lines.join('\n');
}

/** --on-failure GOAL [--on-failure-namespace NS] [--on-failure-payload JSON]. */
function onFailure(v: Context['values']): ScheduleSpec['onFailure'] {
  const goal = v['on-failure'] as string | undefined;
  const namespace = v['on-failure-namespace'] as string | undefined;
  const payload = v['on-failure-payload'] as string | undefined;
  if (goal === undefined) {
    if (namespace !== undefined || payload !== undefined)
      throw new UsageError(
        '--on-failure-namespace and --on-failure-payload need --on-failure GOAL',
      );
    return undefined;
  }
  return {
    goal,
    namespace,
    payloadText: payload === undefined ? undefined : jsonArg('--on-failure-payload', payload),
  };
}

async function set(ctx: Context, [name, goal, json]: string[]): Promise<void> {
  const v = ctx.values;
  const cron = v.cron as string | undefined;
  const every = numberArg('every', v.every as string | undefined);
  if ((cron === undefined) === (every === undefined))
    throw new UsageError('give --cron EXPR or --every S (one of them)');
  const choice = <T extends string>(flag: string, allowed: readonly T[]): T | undefined => {
    const value = v[flag] as string | undefined;
    if (value !== undefined && !(allowed as readonly string[]).includes(value))
      throw new UsageError(`--${flag} must be one of ${allowed.join(', ')}`);
    return value as T | undefined;
  };
  const s = await ctx.client().schedules.set(name!, {
    cron,
    every,
    timezone: v.tz as string | undefined,
    overlap: choice('overlap', ['allow', 'skip'] as const),
    catchUp: choice('catch-up', ['none', 'latest', 'all'] as const),
    paused: v.paused === true ? true : undefined,
    deadline: numberArg('deadline', v.deadline as string | undefined),
    onFailure: onFailure(v),
    intent: {
      goal: goal!,
      payloadText: jsonArg('PAYLOAD', json!),
      namespace: v.namespace as string | undefined,
      priority: numberArg('priority', v.priority as string | undefined),
      visibility: v.public ? 'public' : undefined,
      target_worker: v.target as string | undefined,
      required_capability: v.capability as string | undefined,
      max_attempts: numberArg('max-attempts', v['max-attempts'] as string | undefined),
      backoff_base: numberArg('backoff-base', v['backoff-base'] as string | undefined),
      ttl: numberArg('ttl', v.ttl as string | undefined),
    },
  });
  ctx.out.resultText(
    answerText(s),
    () =>
      `${s.created ? 'created' : 'set'} schedule ${s.name}: ${s.description}, ` +
      (s.paused ? 'paused' : `next run ${iso(s.next_run_at)}`),
  );
}

async function show(ctx: Context, [name]: string[]): Promise<void> {
  const s = await ctx.client().schedules.get(name!);
  if (!s) {
    if (!ctx.out.json) ctx.out.note(`${name}: no such schedule for this key`);
    throw new Exit(EXIT.notFound);
  }
  ctx.out.resultText(answerText(s), () => human(s));
}

/** The subcommands: words, positional arguments, and what each does. */
const SUBCOMMANDS: Array<{
  word: string;
  args: string[];
  run(ctx: Context, args: string[]): Promise<void>;
}> = [
  { word: 'set', args: ['NAME', 'GOAL', 'PAYLOAD'], run: set },
  {
    word: 'list',
    args: [],
    async run(ctx) {
      const all = await ctx.client().schedules.list();
      ctx.out.result(all, () => (all.length === 0 ? 'no schedules' : all.map(line).join('\n')));
    },
  },
  { word: 'show', args: ['NAME'], run: show },
  ...(['pause', 'resume'] as const).map((word) => ({
    word,
    args: ['NAME'],
    async run(ctx: Context, [name]: string[]) {
      const s = await ctx.client().schedules[word](name!);
      ctx.out.resultText(answerText(s), () => `${s.name}: ${s.paused ? 'paused' : 'active'}`);
    },
  })),
  {
    word: 'trigger',
    args: ['NAME'],
    async run(ctx, [name]) {
      const r = await ctx.client().schedules.trigger(name!);
      ctx.out.result(r, () => `published ${r.id} (schedule ${r.schedule}, now)`);
    },
  },
  {
    word: 'rm',
    args: ['NAME'],
    async run(ctx, [name]) {
      if (!(await ctx.client().schedules.delete(name!))) {
        if (!ctx.out.json) ctx.out.note(`${name}: no such schedule for this key`);
        throw new Exit(EXIT.notFound);
      }
      ctx.out.result({ ok: true, name, deleted: true }, () => `removed ${name} (its runs stay)`);
    },
  },
];

export const schedule: Command = {
  name: 'schedule',
  summary: 'recurring jobs: set, list, show, pause, resume, trigger, rm',
  usage: `intent-bus schedule set NAME (--cron EXPR | --every S) [--tz ZONE] GOAL PAYLOAD
                    [--overlap allow|skip] [--catch-up none|latest|all] [--paused]
                    [--deadline S] [--on-failure GOAL [--on-failure-namespace NS]
                    [--on-failure-payload JSON]]
                    [-n NS] [--priority N] [--public] [--target ID] [--capability C]
                    [--max-attempts N] [--backoff-base S] [--ttl S]
intent-bus schedule list
intent-bus schedule show NAME           the next runs and the last ${plural(20, 'run')}, each
                                        with its outcome (missed, dead, ...) and alert
intent-bus schedule pause NAME | resume NAME | trigger NAME | rm NAME

  --cron EXPR      5 fields (minute hour day month weekday), or 6 with seconds first,
                   read in --tz (an IANA zone such as Europe/Berlin; default UTC)
  --every S        every S seconds, on the epoch's grid (--every 60: each minute)
  --overlap skip   no new run while the last one is open or claimed
  --catch-up       ticks missed while the bus was down: none, latest (default), or all
  --deadline S     a run not fulfilled S seconds after its tick is missed
  --on-failure G   when a run dies or is missed, publish an alert intent of goal G whose
                   payload names the schedule, the run and the reason (with the members
                   of --on-failure-payload, a JSON object), in --on-failure-namespace
  set again with the same flags changes nothing; trigger publishes one run now.`,
  options: {
    cron: { type: 'string' },
    every: { type: 'string' },
    tz: { type: 'string' },
    overlap: { type: 'string' },
    'catch-up': { type: 'string' },
    paused: { type: 'boolean' },
    deadline: { type: 'string' },
    'on-failure': { type: 'string' },
    'on-failure-namespace': { type: 'string' },
    'on-failure-payload': { type: 'string' },
    namespace: { type: 'string', short: 'n' },
    priority: { type: 'string' },
    public: { type: 'boolean' },
    target: { type: 'string' },
    capability: { type: 'string' },
    'max-attempts': { type: 'string' },
    'backoff-base': { type: 'string' },
    ttl: { type: 'string' },
  },
  async run(ctx) {
    const [word, ...args] = ctx.positionals;
    const sub = SUBCOMMANDS.find((c) => c.word === word);
    if (!sub) throw new UsageError(`unknown schedule command: ${word ?? '(none)'}`);
    if (args.length !== sub.args.length)
      throw new UsageError(`expected: schedule ${sub.word} ${sub.args.join(' ')}`.trimEnd());
    await sub.run(ctx, args);
  },
};
