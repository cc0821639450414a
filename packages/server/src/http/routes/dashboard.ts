/**
 * GET /admin/dashboard: the operator's page, plain files from packages/server/dashboard/
 * read once at start-up and served behind admin auth (like every /admin route), under a
 * strict Content-Security-Policy: no inline script or style, no other origin. `/` and
 * `/admin/dashboard/` lead to it.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { BusContext } from '../context.js';

/** The same relative path from src/http/routes and dist/http/routes. */
const DASHBOARD_DIR = new URL('../../../dashboard/', import.meta.url);

export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const FILES: [url: string, file: string, type: string][] = [
  ['/admin/dashboard', 'index.html', 'text/html; charset=utf-8'],
  ['/admin/dashboard/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/admin/dashboard/app.css', 'app.css', 'text/css; charset=utf-8'],
];

/**
 * A page that leads to the dashboard: a link, followed at once by a meta refresh (no
 * script, so the strict CSP holds). A page, not a 3xx: every answer of the bus is a 2xx or
 * an error in the protocol's JSON shape. `href` is relative so that a bus behind a proxy
 * under a path prefix leads to its own dashboard.
 */
const leadTo = (href: string): string =>
  '<!doctype html>\n<html lang="en">\n<meta charset="utf-8" />\n' +
  '<meta name="viewport" content="width=device-width, initial-scale=1" />\n' +
  `<meta http-equiv="refresh" content="0; url=${href}" />\n<title>Intent Bus</title>\n` +
  `<p>The dashboard of this Intent Bus is at <a href="${href}">/admin/dashboard</a> ` +
  '(it asks for the admin login).</p>\n';

const HTML = 'text/html; charset=utf-8';

export async function dashboardRoutes(app: FastifyInstance, _ctx: BusContext): Promise<void> {
  for (const [url, file, type] of FILES) {
    const body = readFileSync(new URL(file, DASHBOARD_DIR));
    app.get(url, async (_req, reply) =>
      reply.header('content-security-policy', DASHBOARD_CSP).type(type).send(body),
    );
  }
  // With the slash the page's relative URLs would miss its files: lead to the real one.
  const slash = leadTo('../dashboard');
  app.get('/admin/dashboard/', async (_req, reply) =>
    reply.header('content-security-policy', DASHBOARD_CSP).type(HTML).send(slash),
  );
}

/** GET /: public (it holds nothing), leads a browser to the dashboard and its login. */
export async function rootRoutes(app: FastifyInstance): Promise<void> {
  const root = leadTo('admin/dashboard');
  app.get('/', async (_req, reply) =>
    reply.header('content-security-policy', DASHBOARD_CSP).type(HTML).send(root),
  );
}
