// The ceiling of the stack: the same Node and the same Fastify as the bus (resolved from
// packages/server), one trivial route, no logging, no database. The bench starts it pinned
// like the bus and drives it with the same generator; its requests/s is what Node's HTTP
// layer does on this machine.
//   node bench/noop-server.mjs PORT   (prints {"port": N} once listening)
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const serverPkg = fileURLToPath(new URL('../packages/server/package.json', import.meta.url));
const { default: Fastify } = await import(
  pathToFileURL(createRequire(serverPkg).resolve('fastify')).href
);

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
app.post('/noop', async (req) => ({ ok: true, n: req.body?.n ?? null }));
app.get('/health', async () => ({ ok: true }));

const port = Number(process.argv[2] ?? 0);
await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`${JSON.stringify({ port: app.server.address().port })}\n`);

const stop = () => app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
