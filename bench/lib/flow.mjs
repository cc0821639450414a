// Flow controls for the bench (issue 19, docs/PROTOCOL.md §6.1): `--flow-max-in-flight N`
// and `--flow-rate N/S` put a control on each run's goal through the admin API before the
// run, and remove it after, so that a run measures the claim path under a control.
import { request } from 'undici';

/**
 * The control the options ask for, in the body of PUT /admin/flow/<namespace>/<goal>, or
 * null when neither is set. Throws on a bad value (the protocol's ranges).
 */
export function parseFlow(maxInFlight, rate) {
  const control = {};
  if (maxInFlight != null) {
    const n = Number(maxInFlight);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) {
      throw new Error(`--flow-max-in-flight: expected an integer 1-100000, got ${maxInFlight}`);
    }
    control.max_in_flight = n;
  }
  if (rate != null) {
    const m = /^(\d+)\/(\d+)$/.exec(rate);
    const limit = m ? Number(m[1]) : NaN;
    const per = m ? Number(m[2]) : NaN;
    if (!(limit >= 1 && limit <= 10_000 && per >= 1 && per <= 86_400)) {
      throw new Error(
        `--flow-rate: expected N/S (N 1-10000 claims per S 1-86400 seconds), got ${rate}`,
      );
    }
    control.rate = { limit, per };
  }
  return Object.keys(control).length > 0 ? control : null;
}

/** One line describing a control, for the log and the table's header. */
export function describeFlow(control) {
  if (!control) return 'none';
  const parts = [];
  if (control.max_in_flight != null) parts.push(`max_in_flight ${control.max_in_flight}`);
  if (control.rate) parts.push(`rate ${control.rate.limit} per ${control.rate.per} s`);
  return parts.join(', ');
}

async function admin(url, adminSecret, method, path, body) {
  const res = await request(`${url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-admin-token': adminSecret },
    body: body == null ? undefined : JSON.stringify(body),
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const text = await res.body.text();
  return { status: res.statusCode, text };
}

const flowPath = (namespace, goal) =>
  `/admin/flow/${encodeURIComponent(namespace)}/${encodeURIComponent(goal)}`;

/** Sets `control` on a goal (through one node: the store holds it for every node). */
export async function setFlow({ url, adminSecret, namespace = 'default', goal, control }) {
  const res = await admin(url, adminSecret, 'PUT', flowPath(namespace, goal), control);
  if (res.status !== 200) throw new Error(`PUT flow control: ${res.status} ${res.text}`);
  return JSON.parse(res.text);
}

/** Removes the control of a goal after its run (not timed). */
export async function clearFlow({ url, adminSecret, namespace = 'default', goal }) {
  const res = await admin(url, adminSecret, 'DELETE', flowPath(namespace, goal));
  if (res.status !== 200 && res.status !== 404) {
    throw new Error(`DELETE flow control: ${res.status} ${res.text}`);
  }
}

/**
 * What a rate control allows a run of `jobs` at most: the shortest time it can take (the
 * first `limit` claims at once, then `limit` more per `per` seconds) and so the most
 * jobs/s; null without a rate.
 */
export function rateBound(control, jobs) {
  if (!control?.rate) return null;
  const { limit, per } = control.rate;
  const minSeconds = Math.max(0, Math.ceil(jobs / limit) - 1) * per;
  return { minSeconds, maxJobsPerSec: minSeconds > 0 ? jobs / minSeconds : null };
}

/** Parses Prometheus text: [{ name, labels: {…}, value }]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * The sum over the nodes of a metric's samples whose labels match `where` (GET /metrics
 * with the admin token), or null when a node did not answer.
 */
export async function metricSum({ urls, adminSecret, name, where = {} }) {
  let sum = 0;
  for (const url of urls) {
    const res = await admin(url, adminSecret, 'GET', '/metrics');
    if (res.status !== 200) return null;
    for (const s of parseMetrics(res.text)) {
      if (s.name !== name) continue;
      if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  return sum;
}

/** Claims of a goal that found nothing because a control held intents back, over the nodes. */
export const heldClaims = ({ urls, adminSecret, namespace = 'default', goal }) =>
  metricSum({
    urls,
    adminSecret,
    name: 'intent_bus_claims_held_total',
    where: { namespace, goal },
  });

/**
 * What the fleet's worker registry (issue 18) wrote to the store since its nodes started:
 * rows and flushes (intent_bus_worker_registry_writes, every node summed; nulls when a
 * node did not answer), and the seconds since `since`.
 */
export async function registryWrites({ urls, adminSecret, since }) {
  const name = 'intent_bus_worker_registry_writes';
  const [rows, flushes] = await Promise.all([
    metricSum({ urls, adminSecret, name, where: { kind: 'rows' } }),
    metricSum({ urls, adminSecret, name, where: { kind: 'flushes' } }),
  ]);
  return { rows, flushes, seconds: (Date.now() - since) / 1000 };
}
