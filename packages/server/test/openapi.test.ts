/** /openapi.json describes every route the bus registered, from the validating schemas. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schemas } from '@intent-bus/protocol';
import { startTestBus, type TestBus } from './helpers.js';

describe('/openapi.json', () => {
  let t: TestBus;
  let doc: { openapi: string; paths: Record<string, Record<string, Record<string, unknown>>> };
  beforeAll(async () => {
    t = await startTestBus();
    const r = await t.api('GET', '/openapi.json', { key: null });
    expect(r.status).toBe(200);
    doc = r.json;
  });
  afterAll(async () => t.close());

  it('is public OpenAPI 3.1', () => {
    expect(doc.openapi).toBe('3.1.0');
  });

  it('covers every registered route and method', async () => {
    // The routes as Fastify knows them, independently of the document.
    const listed = t.bus.app.printRoutes({ commonPrefix: false });
    // A tree: each level is indented by four characters and holds the rest of the path
    // (below the route `/`, without a leading slash).
    const routes: Array<[string, string]> = [];
    const prefixes: string[] = [];
    for (const line of listed.split('\n')) {
      const m = /^([\s│├└─]*)(\S+) \(([A-Z, ]+)\)$/.exec(line);
      if (!m) continue;
      const depth = m[1]!.length / 4 - 1;
      prefixes.length = depth;
      const url = prefixes.join('') + m[2]!;
      prefixes.push(m[2]!);
      for (const method of m[3]!.split(', ')) routes.push([method, url]);
    }
    expect(routes.length).toBeGreaterThan(60);
    let described = 0;
    for (const [method, url] of routes) {
      if (method === 'HEAD') continue;
      const op = doc.paths[url.replace(/:([A-Za-z_]+)/g, '{$1}')]?.[method.toLowerCase()];
      if (op) {
        described++;
        continue;
      }
      // Left out: only the answers to methods a path does not have, which are 405s.
      const concrete = url.replace(/:[A-Za-z_]+/g, '0'.repeat(32));
      const r = await fetch(t.url + concrete, { method });
      expect(r.status, `${method} ${url} is neither described nor a 405`).toBe(405);
    }
    expect(described).toBeGreaterThanOrEqual(25);
  });

  it('uses the schemas that validate requests', () => {
    const publish = doc.paths['/intent']!.post!;
    expect(
      (publish.requestBody as { content: Record<string, { schema: unknown }> }).content[
        'application/json'
      ]!.schema,
    ).toEqual(JSON.parse(JSON.stringify(schemas.publishBody)));
    const claim = doc.paths['/claim']!.post!.parameters as Array<{ name: string; in: string }>;
    expect(claim.map((p) => p.name)).toEqual(
      expect.arrayContaining(['goal', 'namespace', 'publisher', 'wait']),
    );
    expect(doc.paths['/fulfill/{id}']!.post!.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths['/admin/keys']!.get!.security).toEqual([
      { adminToken: [] },
      { adminBasic: [] },
    ]);
    expect(doc.paths['/health']!.get!.security).toEqual([]);
  });
});
