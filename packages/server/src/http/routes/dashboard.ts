/**
 * GET /admin/dashboard: the operator's page, plain files from packages/server/dashboard/
 * read once at start-up and served behind admin auth (like every /admin route), under a
 * strict Content-Security-Policy: no inline script or style, no other origin.
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

export async function dashboardRoutes(app: FastifyInstance, _ctx: BusContext): Promise<void> {
  for (const [url, file, type] of FILES) {
    const body = readFileSync(new URL(file, DASHBOARD_DIR));
    app.get(url, async (_req, reply) =>
      reply.header('content-security-policy', DASHBOARD_CSP).type(type).send(body),
    );
  }
}
