/**
 * The layers of ARCHITECTURE.md, checked by `npm test` (`npm run lint:deps`): data flows one
 * way and nothing imports in a circle. Type-only imports count too: a cycle of types is
 * still a cycle of meaning.
 */
const SERVER = '^packages/server/src/';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules that import each other cannot be understood, tested or moved alone.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'core-is-pure',
      severity: 'error',
      comment: 'core/ is plain functions over values: it imports only core/ and the protocol.',
      from: { path: `${SERVER}core/` },
      to: { path: '^packages/', pathNot: [`${SERVER}core/`, '^packages/protocol/src/'] },
    },
    {
      name: 'store-knows-no-http',
      severity: 'error',
      comment: 'The store knows nothing of HTTP, waiting or the running bus.',
      from: { path: `${SERVER}store/` },
      to: {
        path: `${SERVER}(http|wake|housekeeping)/|${SERVER}(events|metrics|server|serve|main)\\.ts$`,
      },
    },
    {
      name: 'ops-below-http',
      severity: 'error',
      comment: 'Operations (ops/) decide, wait and announce; they know nothing of HTTP.',
      from: { path: `${SERVER}ops/` },
      to: { path: `${SERVER}http/` },
    },
    {
      name: 'http-uses-the-store-seam',
      severity: 'error',
      comment: 'Routes see the Store interface, never a backend or a connection.',
      from: { path: `${SERVER}http/` },
      to: { path: `${SERVER}store/(sqlite|postgres|transfer)/` },
    },
    {
      name: 'below-the-bus',
      severity: 'error',
      comment: 'server.ts composes the bus: only the entry points import it.',
      from: { pathNot: `${SERVER}(serve|main|index)\\.ts$` },
      to: { path: `${SERVER}server\\.ts$` },
    },
    {
      name: 'sdk-alone',
      severity: 'error',
      comment: 'The SDK shares only the protocol with the server, and never imports the CLI.',
      from: { path: '^packages/sdk/src/' },
      to: { path: '^packages/(server|cli)/' },
    },
    {
      name: 'protocol-alone',
      severity: 'error',
      comment: 'The protocol is the contract everyone imports; it imports no one.',
      from: { path: '^packages/protocol/src/' },
      to: { path: '^packages/(server|sdk|cli)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    combinedDependencies: true,
  },
};
