#!/usr/bin/env node
/**
 * `intent-bus serve`: starts the bus with the configuration of PRODUCT.md read from the
 * environment and flags. Bad configuration stops it with one line naming the variable.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, resolveConfig, serveFlags } from './config.js';
import { resolveSecrets } from './secrets.js';
import { startBus } from './server.js';

const USAGE = `Usage: intent-bus serve [--port N] [--host H] [--db PATH] [--<setting> VALUE ...]

Every setting is an environment variable and a flag:
${serveFlags()
  .map((f) => `  --${f.flag.padEnd(26)} ${f.env}`)
  .join('\n')}
`;

function fail(message: string, code: number): never {
  process.stderr.write(`intent-bus: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const args = argv[0] === 'serve' ? argv.slice(1) : argv;
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
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
  const { help, ...settings } = flags;
  if (help) {
    process.stdout.write(USAGE);
    return;
  }
  const logger = pino(
    { level: 'info', base: null, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ sync: false }),
  );
  try {
    const base = resolveConfig(process.env, settings as Record<string, string>);
    logger.level = base.logLevel;
    const { config, generated, file } = resolveSecrets(base);
    const bus = await startBus({ config, logger });
    if (generated.length > 0) printFirstRun(bus.url, config, generated, file);
    logger.info({ url: bus.url, db: config.dbPath }, 'intent bus listening');
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) process.exit(1);
      stopping = true;
      logger.info({ signal }, 'shutting down');
      bus.close().then(
        () => {
          logger.flush();
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          logger.flush();
          process.exit(1);
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

function printFirstRun(
  url: string,
  c: { secret: string; adminSecret: string; dashboardPassword: string },
  generated: string[],
  file: string,
): void {
  process.stderr.write(
    [
      '',
      `Intent Bus generated ${generated.join(', ')} and stored them in ${file} (mode 600).`,
      'They are shown this once:',
      '',
      `  BUS_SECRET=${c.secret}            # main API key:  -H "X-API-KEY: ..."`,
      `  BUS_ADMIN_SECRET=${c.adminSecret}   # admin API:  -H "X-Admin-Token: ..."`,
      `  DASHBOARD_PASSWORD=${c.dashboardPassword}   # ${url}/admin/dashboard, user "admin"`,
      '',
      `Try:  curl -s ${url}/health`,
      '',
    ].join('\n'),
  );
}

process.on('unhandledRejection', (err) => {
  process.stderr.write(`intent-bus: unhandled rejection: ${String(err)}\n`);
});

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(err instanceof Error ? err.message : String(err), 1);
});
