/**
 * `intent-bus serve`: starts the bus with the configuration of PRODUCT.md read from the
 * environment and flags. Bad configuration stops it with one line naming the variable.
 * Used by `npm start` (main.ts) and by the CLI's `serve` command.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, resolveConfig, serveFlags } from './config.js';
import { resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { resolveSecrets, type ResolvedSecrets } from './secrets.js';
import { VERSION } from './version.js';
import { startBus } from './server.js';

const USAGE = `Usage: intent-bus serve [--port N] [--host H] [--db PATH] [--<setting> VALUE ...]
       intent-bus serve --version

Every setting is a flag and an environment variable (the flag wins):
${serveFlags()
  .map((f) => {
    // An alias (--db) is the short name the README uses: it comes first.
    const [name, ...others] = [...f.aliases, f.flag].map((n) => `--${n}`);
    const head = `  ${name} ${f.value}${others.length > 0 ? ` (or ${others.join(', ')})` : ''}`;
    return `${head.padEnd(37)}  ${f.envs.join(', ')}\n      ${f.meaning}. Default: ${f.default}`;
  })
  .join('\n')}
`;

function fail(message: string, code: number): never {
  process.stderr.write(`intent-bus: ${message}\n`);
  process.exit(code);
}

/** Runs the bus until SIGTERM or SIGINT; `argv` are the flags after `serve`. */
export async function runServe(argv: string[]): Promise<void> {
  const args = argv[0] === 'serve' ? argv.slice(1) : argv;
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    help: { type: 'boolean' },
    version: { type: 'boolean' },
  };
  for (const f of serveFlags()) {
    options[f.flag] = { type: 'string' };
    for (const a of f.aliases) options[a] = { type: 'string' };
  }
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`, 2);
  }
  const { help, version, ...settings } = flags;
  if (help) {
    process.stdout.write(USAGE);
    return;
  }
  if (version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  keepOptimisedCodeWhenIdle();
  const logger = pino(
    { level: 'info', base: null, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ sync: false }),
  );
  try {
    const base = resolveConfig(process.env, settings as Record<string, string>);
    logger.level = base.logLevel;
    const { config, generated, file } = resolveSecrets(base);
    const bus = await startBus({ config, logger });
    // Listening on every interface: show an address a browser or curl can open.
    const url = bus.url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
    if (generated.length > 0) {
      printFirstRun(
        url,
        {
          BUS_SECRET: config.secret,
          BUS_ADMIN_SECRET: config.adminSecret,
          DASHBOARD_PASSWORD: config.dashboardPassword ?? '',
        },
        generated,
        file,
      );
    }
    printStarted(url, config, file);
    logger.info(
      {
        url: bus.url,
        store: bus.store.kind,
        ...(bus.store.kind === 'sqlite' && { db: config.dbPath }),
      },
      'intent bus listening',
    );
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) process.exit(1);
      stopping = true;
      logger.info({ signal }, 'shutting down');
      // The log destination is asynchronous: exit once its last lines are written.
      const exit = (code: number) => logger.flush(() => process.exit(code));
      bus.close().then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
}

/**
 * Issue 21: V8's memory reducer runs up to three full garbage collections once the process
 * goes idle (25 to 75 s into a pause, measured). With no request in flight, the hidden
 * classes of the per-request objects (Node's IncomingMessage and ServerResponse, Fastify's
 * Request and Reply, the store's rows) have no live instance; those collections free them,
 * and every optimised function that was specialised on them is deoptimised ("weak objects" in
 * --trace-deopt). The next requests then ran in the interpreter while TurboFan recompiled
 * about 180 functions: the first 2,000 jobs after 90 s idle cost 1.8× the CPU of warm ones
 * (BENCHMARKS.md, "Cold start (issue 21)"). Without the reducer the heap is still collected
 * as it fills, while requests keep those classes alive; what it gives up is shrinking an idle
 * heap sooner. Set for the `serve` process only, not for an application that embeds the bus.
 */
function keepOptimisedCodeWhenIdle(): void {
  setFlagsFromString('--no-memory-reducer');
}

/** Shows the values generated by this run, once; values set by the operator are not echoed. */
function printFirstRun(
  url: string,
  values: Record<string, string>,
  generated: string[],
  file: string,
): void {
  const use: Record<string, string> = {
    BUS_SECRET: 'main API key: -H "X-API-KEY: ..."',
    BUS_ADMIN_SECRET: 'admin API: -H "X-Admin-Token: ..."',
    DASHBOARD_PASSWORD: `${url}/admin/dashboard, user "admin"`,
  };
  process.stderr.write(
    [
      '',
      `Intent Bus generated ${generated.join(', ')} and stored them in ${file} (mode 600).`,
      'They are shown this once:',
      '',
      ...generated.map((name) => `  ${name}=${values[name]}    # ${use[name]}`),
      '',
      `Try:  curl -s ${url}/health`,
      '',
    ].join('\n'),
  );
}

/** Where everything is, on every start (on standard error, as the first-run lines). */
function printStarted(url: string, config: ResolvedSecrets['config'], file: string): void {
  const lines = [
    `Intent Bus ${VERSION} is running at ${url}`,
    config.databaseUrl == null
      ? `  data:       ${resolve(config.dbPath)} (SQLite)`
      : '  data:       PostgreSQL (BUS_DATABASE_URL)',
  ];
  if (file !== '') lines.push(`  secrets:    ${file}`);
  lines.push(
    `  dashboard:  ${url}/admin/dashboard ` +
      (config.dashboardPassword == null
        ? '(X-Admin-Token only: DASHBOARD_PASSWORD is not set)'
        : '(user "admin", password DASHBOARD_PASSWORD)'),
  );
  if (isLoopbackHost(config.host)) {
    lines.push(
      `  Only this machine can reach it (BUS_HOST=${config.host}): set BUS_HOST=0.0.0.0 to ` +
        'let other machines in, with TLS (BUS_TLS_CERT and BUS_TLS_KEY, or a proxy).',
    );
  }
  process.stderr.write(`${lines.join('\n')}\n`);
}

const isLoopbackHost = (host: string): boolean =>
  host === 'localhost' || host === '::1' || /^127\./.test(host);

/** The process-level guards of a running bus. */
export function installProcessGuards(): void {
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`intent-bus: unhandled rejection: ${String(err)}\n`);
  });
}

/** Runs `serve`, ending the process with the exit codes of PRODUCT.md on failure. */
export function serveMain(argv: string[]): void {
  installProcessGuards();
  runServe(argv).catch((err: unknown) => {
    fail(err instanceof Error ? err.message : String(err), 1);
  });
}
