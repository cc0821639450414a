#!/usr/bin/env node
// Every package of package-lock.json that installs on this platform supports every Node
// given on the command line (its `engines.node`, as npm checks it for EBADENGINE), and so
// do the project's own `engines`. Usage: node .ci/engines.mjs 20.20.2 22.23.5 24.22.3
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const semver = require('semver');
const versions = process.argv.slice(2);
if (versions.length === 0) throw new Error('usage: node .ci/engines.mjs VERSION...');

const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8'));
/** Whether npm installs the package here at all (its os and cpu, when it names them). */
const installsHere = (p) =>
  (!p.os || p.os.includes(process.platform)) && (!p.cpu || p.cpu.includes(process.arch));

const problems = [];
for (const [path, p] of Object.entries(lock.packages)) {
  const range = p.engines?.node;
  if (range == null || !installsHere(p)) continue;
  const name = path === '' ? '(the repository)' : path.replace(/^.*node_modules\//, '');
  for (const v of versions) {
    if (!semver.satisfies(v, range))
      problems.push(`${name}@${p.version ?? ''}: node ${range}, not ${v}`);
  }
}
if (problems.length > 0) {
  process.stderr.write(`engines: not every dependency supports Node ${versions.join(', ')}:\n`);
  for (const p of problems) process.stderr.write(`  ${p}\n`);
  process.exit(1);
}
const count = Object.values(lock.packages).filter((p) => p.engines?.node && installsHere(p));
process.stdout.write(
  `engines: ${count.length} packages that name a Node, all of them support ${versions.join(', ')}\n`,
);
