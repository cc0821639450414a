/** `intent-bus listen`: this machine becomes a worker for a goal. */
import { WorkerRuntime, jsonText, text, withRawMembers, type RuntimeLogger } from '@intent-bus/sdk';
import { runCommand, commandWords, type ExecSpec } from './exec.js';
import { numberArg, type Command } from './commands.js';
import { EXIT, Exit, UsageError } from './output.js';

export const listen: Command = {
  name: 'listen',
  summary: 'claim and run jobs of a goal (a worker in one line)',
  usage: `intent-bus listen GOAL [-n NS] [-w WORKER_ID] [-c CAP,CAP] [--concurrency N] [--once]
                  [--publisher KEY_ID] [--exec 'CMD' [--shell] [--timeout S]] [--no-claim-next]

  --exec CMD      run CMD for each job: the payload on its stdin, the JSON text exactly
                  as published, and INTENT_ID, INTENT_GOAL and INTENT_ATTEMPT in its
                  environment. CMD is split into words like a shell does (quotes
                  respected) but nothing is expanded. Exit 0 fulfils with its stdout
                  (JSON if it parses, sent exactly as written; else text);
                  anything else fails the job with the exit code and stderr's tail.
                  A line \`progress PERCENT MESSAGE\` written to file descriptor 3
                  reports the job's progress and extends its lease (PERCENT 0-100
                  or -): --exec 'sh -c "echo progress 50 halfway >&3; sleep 60"'
  --shell         run CMD with sh -c instead (pipes, variables, globs)
  --timeout S     kill CMD after S seconds and fail the job (default 600, 0: never)
  --once          take at most one job, then exit (3 when there was none)
  --wait S        seconds each claim waits for a job at the bus (long poll, default 25)
  --publisher KEY_ID
                  take only the jobs of that key (its kid_…, from admin keys list).
                  Without it a worker takes public jobs and its own key's private ones
                  (a job is private unless its publisher made it public), so a worker
                  with the main key does not see what a tester key published until it
                  names that key here (only the main key may name another key)
  --no-claim-next claim apart: by default each job's outcome also claims the next job,
                  one request per job (fulfil?next=1); a bus without that answers
                  the outcome only and is then asked apart
  Without --exec, each job is printed and fulfilled.
  SIGINT or SIGTERM stops claiming and lets jobs in flight finish.
  With -w, the bus's admin can steer it (intent-bus admin workers quiet|stop|resume ID):
  quiet takes no job until resumed; stop lets jobs in flight finish, then exits 0.`,
  options: {
    namespace: { type: 'string', short: 'n' },
    'worker-id': { type: 'string', short: 'w' },
    capabilities: { type: 'string', short: 'c' },
    concurrency: { type: 'string' },
    once: { type: 'boolean' },
    exec: { type: 'string' },
    shell: { type: 'boolean' },
    timeout: { type: 'string' },
    wait: { type: 'string' },
    publisher: { type: 'string' },
    'no-claim-next': { type: 'boolean' },
  },
  async run(ctx) {
    if (ctx.positionals.length !== 1) throw new UsageError('expected GOAL');
    const goal = ctx.positionals[0]!;
    const v = ctx.values;
    const exec: ExecSpec | null =
      v.exec === undefined
        ? null
        : {
            command: v.exec as string,
            shell: v.shell === true,
            timeoutSeconds: numberArg('timeout', v.timeout as string | undefined) ?? 600,
          };
    if (exec) {
      try {
        if (commandWords(exec).length === 0) throw new UsageError('--exec is empty');
      } catch (err) {
        throw err instanceof UsageError ? err : new UsageError(`--exec: ${(err as Error).message}`);
      }
    } else if (v.shell || v.timeout !== undefined) {
      throw new UsageError('--shell and --timeout go with --exec');
    }
    const concurrency = numberArg('concurrency', v.concurrency as string | undefined) ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new UsageError('--concurrency must be 1 or more');
    const client = ctx.client();
    const logger: RuntimeLogger = {
      info: (m, f) => ctx.out.note(`${m}${f ? ` ${JSON.stringify(f)}` : ''}`),
      warn: (m, f) => {
        // The handler below says "job … failed: why" already; the runtime's own line for
        // it would print each failure twice.
        if (m === 'job failed') return;
        // A worker started before its bus: say what to check, not "fetch failed".
        if (m === 'bus unreachable, retrying' && f)
          return ctx.out.note(
            `warning: is the bus running at ${client.baseUrl}? retrying in ${Math.ceil(Number(f.retryInMs) / 1000)} s (${String(f.error)})`,
          );
        ctx.out.note(`warning: ${m}${f ? ` ${JSON.stringify(f)}` : ''}`);
      },
      error: (m, f) => ctx.out.note(`error: ${m}${f ? ` ${JSON.stringify(f)}` : ''}`),
    };
    const runtime = new WorkerRuntime({
      client,
      workerId: v['worker-id'] as string | undefined,
      capabilities: ((v.capabilities as string | undefined) ?? '')
        .split(',')
        .map((c) => c.trim())
        .filter(Boolean),
      concurrency: v.once ? 1 : concurrency,
      logger,
      claimNext: v['no-claim-next'] !== true,
    });
    if (!v.once && !ctx.out.json) {
      ctx.out.note(
        `listening for ${goal} in ${(v.namespace as string | undefined) ?? 'default'} (Ctrl-C to stop)`,
      );
    }
    const summary = await runtime.listen({
      goal,
      namespace: v.namespace as string | undefined,
      publisher: v.publisher as string | undefined,
      once: v.once === true,
      waitSeconds: numberArg('wait', v.wait as string | undefined),
      handler: async (job) => {
        // The claim as the bus answered it: the payload's text spliced in, last, as it is there.
        const { signal, payload, payloadText, progress, ...intent } = job;
        ctx.out.resultText(
          withRawMembers(intent, { payload: payloadText }),
          () => `job ${job.id} (${job.goal}, attempt ${job.claim_attempts}): ${payloadText}`,
        );
        if (!exec) return null;
        const outcome = await runCommand(exec, job, signal, (p) => {
          progress(p).catch((err: unknown) =>
            ctx.out.note(
              `warning: job ${job.id}: progress not reported: ${(err as Error).message}`,
            ),
          );
        });
        if (!outcome.ok) {
          ctx.out.note(`job ${job.id} failed: ${outcome.error}`); // stderr, even with --json
          throw new Error(outcome.error);
        }
        if (!ctx.out.json) ctx.out.note(`job ${job.id} done`);
        return outcome.resultType === 'text' ? text(outcome.result) : jsonText(outcome.resultText);
      },
    });
    // Told to stop by the bus (an admin's `workers stop`): its jobs are done, exit 0.
    if (summary.stoppedByBus && !ctx.out.json) ctx.out.note('stopped by the bus');
    if (v.once) {
      if (summary.claimed === 0) {
        if (!ctx.out.json) ctx.out.note('nothing to do');
        throw new Exit(EXIT.notFound);
      }
      if (summary.fulfilled === 0) throw new Exit(EXIT.error);
    }
  },
};
