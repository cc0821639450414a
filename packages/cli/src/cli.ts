/** Dispatches `intent-bus COMMAND …` and turns every outcome into an exit code. */
import { parseArgs } from 'node:util';
import { admin } from './admin.js';
import { AuthError, NetworkError } from '@intent-bus/sdk';
import {
  GLOBAL_HELP,
  GLOBAL_OPTIONS,
  busUrl,
  kv,
  makeContext,
  publish,
  result,
  status,
  type Command,
  type Context,
} from './commands.js';
import { listen } from './listen.js';
import { EXIT, Exit, UsageError, describeError, exitCodeOf } from './output.js';
import { MissingServerError, loadServer } from './server-package.js';
import { schedule } from './schedule.js';
import { watch } from './watch.js';
import { workers } from './workers.js';
import { exportCommand, importCommand } from './transfer.js';

const COMMANDS: Command[] = [publish, listen, result, status, kv, schedule, workers, watch, admin];
/** Commands on the store itself, as `serve` opens it: no URL, key or other common flag. */
const STORE_COMMANDS: Command[] = [exportCommand, importCommand];

const MAIN_HELP = `intent-bus: run code on any device from anywhere, using just HTTP

Usage: intent-bus COMMAND [ARGS] [FLAGS]

Commands:
  serve     run the bus (flags and environment: intent-bus serve --help)
${COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n')}

On the database serve uses (BUS_DB_PATH or BUS_DATABASE_URL), run where it is:
${STORE_COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n')}

intent-bus COMMAND --help shows a command's flags.
Exit codes: 0 ok, 1 error, 2 usage, 3 not found or nothing to do.

${GLOBAL_HELP}`;

const helpOf = (c: Command): string =>
  STORE_COMMANDS.includes(c) ? `Usage: ${c.usage}\n` : `Usage: ${c.usage}\n\n${GLOBAL_HELP}\n`;

/** Runs one command line; resolves with the exit code (serve keeps the process alive). */
export async function runCli(argv: string[]): Promise<number | 'serving'> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${MAIN_HELP}\n`);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write('0.1.0\n');
    return EXIT.ok;
  }
  if (name === 'serve') {
    // Loaded only here: the server (fastify, SQLite) costs every client command ~150 ms
    // at start, and a client machine need not have it installed at all.
    let serveMain: Awaited<ReturnType<typeof loadServer>>['serveMain'];
    try {
      ({ serveMain } = await loadServer());
    } catch (err) {
      if (!(err instanceof MissingServerError)) throw err;
      process.stderr.write(`intent-bus: ${err.message}\n`);
      return EXIT.error;
    }
    // -h is "this help" for every command, serve included.
    serveMain(rest.map((a) => (a === '-h' ? '--help' : a)));
    return 'serving';
  }
  const command =
    COMMANDS.find((c) => c.name === name) ?? STORE_COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`intent-bus: unknown command "${name}"\n\n${MAIN_HELP}\n`);
    return EXIT.usage;
  }
  let ctx: Context | undefined;
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: {
        ...(STORE_COMMANDS.includes(command) ? { help: GLOBAL_OPTIONS.help! } : GLOBAL_OPTIONS),
        ...command.options,
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(helpOf(command));
      return EXIT.ok;
    }
    ctx = makeContext(positionals, values as Record<string, string | boolean | undefined>);
    await command.run(ctx);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof Exit) return err.code;
    // parseArgs throws TypeErrors with a code (ERR_PARSE_ARGS_…): mistakes in the typing.
    const typed = err instanceof UsageError || (err instanceof TypeError && 'code' in err);
    // A network error comes from a client, so the URL was checked already.
    let line = describeError(
      err,
      err instanceof NetworkError && ctx ? busUrl(ctx.values) : undefined,
    );
    if (err instanceof AuthError && err.status === 401 && ctx?.credential)
      line += `; check ${ctx.credential}`;
    process.stderr.write(`intent-bus ${name}: ${line}\n`);
    // The usage only for a mistake in how the command was typed: for anything else it
    // would bury the one line that says what to do.
    if (typed) process.stderr.write(`\n${helpOf(command)}`);
    return typed ? EXIT.usage : exitCodeOf(err);
  }
}

export { UsageError };
