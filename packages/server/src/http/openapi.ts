/**
 * /openapi.json, generated from the routes as registered: their paths, methods and the
 * very JSON schemas that validate their requests (protocol/src/schemas.ts). A route is
 * described the moment it is added, so the document cannot drift from the server.
 */
import { ERROR_CODES } from '@intent-bus/protocol';
import { VERSION } from '../version.js';

const DESCRIPTION =
  'Intent Protocol 2.1 with the [ext] additions of Intent Bus: publish, claim (with long ' +
  'polls), extend, fulfil, fail, results, a per-key KV store and the admin API. Requests may ' +
  'be signed (HMAC-SHA256: X-Timestamp, X-Nonce, X-Signature). Every error is ' +
  '{"error": {"code", "message"}}.';

export interface RouteInfo {
  method: string | string[];
  url: string;
  schema?: { body?: unknown; querystring?: unknown; params?: unknown; summary?: string };
  config?: unknown;
}

type Schema = { properties?: Record<string, unknown>; required?: readonly string[] };

/** Which credential a path takes (PROTOCOL.md §3). */
function security(url: string): Array<Record<string, string[]>> {
  if (url === '/' || url === '/health' || url === '/openapi.json') return [];
  if (url === '/metrics') return [{ metricsToken: [] }, { adminToken: [] }, { adminBasic: [] }];
  if (url.startsWith('/admin')) return [{ adminToken: [] }, { adminBasic: [] }];
  return [{ apiKey: [] }];
}

export class OpenApiDocument {
  private readonly paths: Record<string, Record<string, unknown>> = {};

  /** Adds a route; routes marked `config.openapi === false` (405 answers, assets) are left out. */
  add(route: RouteInfo): void {
    if ((route.config as { openapi?: boolean } | undefined)?.openapi === false) return;
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      const params: unknown[] = [];
      const addParams = (schema: unknown, where: 'path' | 'query'): void => {
        const s = schema as Schema | undefined;
        for (const [name, p] of Object.entries(s?.properties ?? {})) {
          params.push({
            name,
            in: where,
            required: where === 'path' || (s?.required ?? []).includes(name),
            schema: p,
          });
        }
      };
      addParams(route.schema?.params, 'path');
      addParams(route.schema?.querystring, 'query');
      for (const m of path.matchAll(/\{([A-Za-z_]+)\}/g)) {
        if (!params.some((p) => (p as { name: string }).name === m[1])) {
          params.push({ name: m[1], in: 'path', required: true, schema: { type: 'string' } });
        }
      }
      const op: Record<string, unknown> = {
        summary: route.schema?.summary ?? `${method} ${path}`,
        security: security(route.url),
        parameters: params,
        responses: {
          '200': {
            description: 'Success (201 for a creation, 204 when there is nothing to claim)',
          },
          default: {
            description: 'An error in the protocol shape',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
          },
        },
      };
      if (route.schema?.body) {
        op.requestBody = {
          required: true,
          content: { 'application/json': { schema: route.schema.body } },
        };
      }
      (this.paths[path] ??= {})[method.toLowerCase()] = op;
    }
  }

  document(): Record<string, unknown> {
    return {
      openapi: '3.1.0',
      info: {
        title: 'Intent Bus',
        version: VERSION,
        description: DESCRIPTION,
      },
      paths: this.paths,
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-KEY' },
          adminToken: { type: 'apiKey', in: 'header', name: 'X-Admin-Token' },
          adminBasic: { type: 'http', scheme: 'basic' },
          metricsToken: { type: 'http', scheme: 'bearer' },
        },
        schemas: {
          Error: {
            type: 'object',
            required: ['error'],
            properties: {
              error: {
                type: 'object',
                required: ['code', 'message'],
                properties: {
                  code: { type: 'string', enum: Object.keys(ERROR_CODES) },
                  message: { type: 'string' },
                  field: { type: 'string' },
                },
              },
            },
          },
        },
      },
    };
  }
}
