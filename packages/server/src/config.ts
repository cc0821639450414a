/**
 * The only module that reads configuration. Every setting of PRODUCT.md has one entry
 * below: its environment variable, its `serve` flag (derived from the name), its default
 * and its check. `resolveConfig(env, flags)` returns a validated Config or throws a
 * ConfigError naming the variable.
 */

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Kind =
  | { type: 'string' }
  | { type: 'int'; min: number; max: number }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly string[] };

interface Setting<K extends string> {
  key: K;
  env: string;
  aliases?: readonly string[];
  flagAliases?: readonly string[];
  kind: Kind;
  default: string | number | boolean | null;
}

const int = (min: number, max: number) => ({ type: 'int', min, max }) as const;
const str = { type: 'string' } as const;
const bool = { type: 'bool' } as const;

const SETTINGS = [
  { key: 'secret', env: 'BUS_SECRET', kind: str, default: null },
  { key: 'adminSecret', env: 'BUS_ADMIN_SECRET', kind: str, default: null },
  { key: 'dashboardPassword', env: 'DASHBOARD_PASSWORD', kind: str, default: null },
  { key: 'metricsToken', env: 'BUS_METRICS_TOKEN', kind: str, default: null },
  { key: 'host', env: 'BUS_HOST', kind: str, default: '127.0.0.1' },
  { key: 'port', env: 'BUS_PORT', aliases: ['PORT'], kind: int(0, 65535), default: 8080 },
  {
    key: 'dbPath',
    env: 'BUS_DB_PATH',
    flagAliases: ['db'],
    kind: str,
    default: './intent-bus-data/bus.db',
  },
  {
    key: 'sqliteDriver',
    env: 'BUS_SQLITE_DRIVER',
    kind: { type: 'enum', values: ['auto', 'node', 'better-sqlite3'] },
    default: 'auto',
  },
  { key: 'databaseUrl', env: 'BUS_DATABASE_URL', kind: str, default: null },
  { key: 'databaseSchema', env: 'BUS_DATABASE_SCHEMA', kind: str, default: null },
  { key: 'requireSignatures', env: 'BUS_REQUIRE_SIGNATURES', kind: bool, default: false },
  { key: 'trustProxy', env: 'BUS_TRUST_PROXY', kind: bool, default: false },
  { key: 'enforceHttps', env: 'BUS_ENFORCE_HTTPS', kind: bool, default: false },
  { key: 'tlsCert', env: 'BUS_TLS_CERT', kind: str, default: null },
  { key: 'tlsKey', env: 'BUS_TLS_KEY', kind: str, default: null },
  { key: 'maintenanceMode', env: 'BUS_MAINTENANCE_MODE', kind: bool, default: false },
  {
    key: 'claimTimeoutSeconds',
    env: 'BUS_CLAIM_TIMEOUT_SECONDS',
    kind: int(1, 86_400),
    default: 60,
  },
  { key: 'maxBodyBytes', env: 'BUS_MAX_BODY_BYTES', kind: int(1024, 16_777_216), default: 65_536 },
  {
    key: 'maxBatchBodyBytes',
    env: 'BUS_MAX_BATCH_BODY_BYTES',
    kind: int(1024, 268_435_456),
    default: 8_388_608,
  },
  {
    key: 'rateLimitPerMinute',
    env: 'BUS_RATE_LIMIT_PER_MINUTE',
    kind: int(1, 1_000_000),
    default: 60,
  },
  { key: 'maxOpenPerKey', env: 'BUS_MAX_OPEN_PER_KEY', kind: int(1, 100_000_000), default: 2000 },
  {
    key: 'cleanupIntervalSeconds',
    env: 'BUS_CLEANUP_INTERVAL_SECONDS',
    kind: int(1, 86_400),
    default: 60,
  },
  {
    key: 'maxWaitersPerKey',
    env: 'BUS_MAX_WAITERS_PER_KEY',
    kind: int(0, 1_000_000),
    default: 100,
  },
  { key: 'maxWaiters', env: 'BUS_MAX_WAITERS', kind: int(0, 1_000_000), default: 10_000 },
  // Event streams (GET /events [ext], issue 20): open streams per key and per node, the
  // bytes a slow reader may leave unread before it is cut, and the events kept for a resume.
  {
    key: 'maxStreamsPerKey',
    env: 'BUS_MAX_STREAMS_PER_KEY',
    kind: int(0, 1_000_000),
    default: 10,
  },
  { key: 'maxStreams', env: 'BUS_MAX_STREAMS', kind: int(0, 1_000_000), default: 10_000 },
  {
    key: 'streamBufferBytes',
    env: 'BUS_STREAM_BUFFER_BYTES',
    kind: int(1024, 1_073_741_824),
    default: 1_048_576,
  },
  { key: 'eventWindow', env: 'BUS_EVENT_WINDOW', kind: int(1, 1_000_000), default: 10_000 },
  {
    key: 'retentionSeconds',
    env: 'BUS_RETENTION_SECONDS',
    kind: int(60, 315_360_000),
    default: 604_800,
  },
  {
    key: 'schedulesFile',
    env: 'BUS_SCHEDULES_FILE',
    flagAliases: ['schedules'],
    kind: str,
    default: null,
  },
  {
    key: 'workerOnlineSeconds',
    env: 'BUS_WORKER_ONLINE_SECONDS',
    kind: int(1, 86_400),
    default: 30,
  },
  {
    key: 'workerRetentionSeconds',
    env: 'BUS_WORKER_RETENTION_SECONDS',
    kind: int(60, 315_360_000),
    default: 604_800,
  },
  {
    key: 'logLevel',
    env: 'BUS_LOG_LEVEL',
    kind: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    default: 'info',
  },
] as const satisfies readonly Setting<string>[];

type SettingKey = (typeof SETTINGS)[number]['key'];
type ValueOf<S> = S extends { kind: { type: 'int' } }
  ? number
  : S extends { kind: { type: 'bool' } }
    ? boolean
    : S extends { default: null }
      ? string | null
      : string;

export type Config = {
  [S in (typeof SETTINGS)[number] as S['key']]: ValueOf<S>;
};

/** `BUS_CLAIM_TIMEOUT_SECONDS` → `claim-timeout-seconds`; `DASHBOARD_PASSWORD` → `dashboard-password`. */
export const flagName = (env: string): string =>
  env.replace(/^BUS_/, '').toLowerCase().replace(/_/g, '-');

/**
 * What `serve --help` says of each setting: the value's placeholder, its meaning and, when
 * the default is not a plain value, what happens without it (the README's table agrees).
 */
const HELP: Record<string, [value: string, meaning: string, unset?: string]> = {
  BUS_SECRET: ['KEY', 'the main API key (X-API-KEY)', 'generated into secrets.json on first run'],
  BUS_ADMIN_SECRET: [
    'TOKEN',
    'the admin token (X-Admin-Token) of /admin/*',
    'generated into secrets.json on first run',
  ],
  DASHBOARD_PASSWORD: [
    'PASSWORD',
    'the dashboard login, user "admin"',
    'generated into secrets.json on first run',
  ],
  BUS_METRICS_TOKEN: [
    'TOKEN',
    'bearer token for GET /metrics (admin credentials work too)',
    'unset',
  ],
  BUS_HOST: ['HOST', 'address to listen on (0.0.0.0: every interface)'],
  BUS_PORT: ['N', 'port to listen on (0: any free port)'],
  BUS_DB_PATH: ['PATH', 'the SQLite file (secrets.json is kept in its folder)'],
  BUS_SQLITE_DRIVER: [
    'DRIVER',
    'the SQLite library: node (node:sqlite, built into Node 22.16+), better-sqlite3 (a ' +
      'native addon) or auto (node on Node 24+, better-sqlite3 on Node 20 and 22)',
  ],
  BUS_DATABASE_URL: ['URL', 'postgres://…: PostgreSQL instead of SQLite', 'unset (SQLite)'],
  BUS_DATABASE_SCHEMA: ['SCHEMA', "PostgreSQL schema of the bus's tables", 'unset'],
  BUS_REQUIRE_SIGNATURES: ['true|false', 'refuse unsigned client requests (HMAC)'],
  BUS_TRUST_PROXY: [
    'true|false',
    'take the client address and scheme from X-Forwarded-* (one hop)',
  ],
  BUS_ENFORCE_HTTPS: ['true|false', 'refuse plain HTTP from non-loopback clients'],
  BUS_TLS_CERT: ['FILE', 'PEM certificate: serve HTTPS (with BUS_TLS_KEY)', 'unset (HTTP)'],
  BUS_TLS_KEY: ['FILE', 'PEM private key of BUS_TLS_CERT', 'unset (HTTP)'],
  BUS_MAINTENANCE_MODE: ['true|false', '503 maintenance for everything but admin and health'],
  BUS_CLAIM_TIMEOUT_SECONDS: ['S', 'lease length of a claim'],
  BUS_MAX_BODY_BYTES: ['N', 'request body limit (8192: strict 2.1)'],
  BUS_MAX_BATCH_BODY_BYTES: [
    'N',
    'body limit of a batch (POST /intents, /fulfill, /fail); each item still within BUS_MAX_BODY_BYTES',
  ],
  BUS_RATE_LIMIT_PER_MINUTE: ['N', 'requests per tester key per minute (main key exempt)'],
  BUS_MAX_OPEN_PER_KEY: ['N', 'open and claimed intents per tester key (main key exempt)'],
  BUS_CLEANUP_INTERVAL_SECONDS: ['S', 'period of the cleanup pass'],
  BUS_MAX_WAITERS_PER_KEY: ['N', 'long polls one tester key may hold open'],
  BUS_MAX_WAITERS: ['N', 'long polls the node holds open'],
  BUS_MAX_STREAMS_PER_KEY: ['N', 'event streams (GET /events) one tester key may hold open'],
  BUS_MAX_STREAMS: ['N', 'event streams the node holds open'],
  BUS_STREAM_BUFFER_BYTES: ['N', 'unread bytes after which a slow event-stream reader is cut'],
  BUS_EVENT_WINDOW: ['N', 'events the node keeps for a Last-Event-ID resume'],
  BUS_RETENTION_SECONDS: ['S', 'how long fulfilled and dead intents are kept'],
  BUS_SCHEDULES_FILE: [
    'FILE',
    'a JSON object of schedules, name → PUT /schedules body, made or replaced at start ' +
      'for the main key',
    'unset',
  ],
  BUS_WORKER_ONLINE_SECONDS: ['S', 'a worker seen within this long is online (GET /workers)'],
  BUS_WORKER_RETENTION_SECONDS: ['S', 'a worker not seen for this long is forgotten'],
  BUS_LOG_LEVEL: ['LEVEL', 'JSON logs on stdout: fatal, error, warn, info, debug, trace, silent'],
};

export interface ServeFlag {
  flag: string;
  env: string;
  aliases: string[];
  /** Every variable that sets it, the first wins (`BUS_PORT`, `PORT`). */
  envs: string[];
  value: string;
  meaning: string;
  /** The default as people read it. */
  default: string;
}

/** Every flag `serve` accepts, for the CLI's argument parser and its help. */
export function serveFlags(): ServeFlag[] {
  return SETTINGS.map((s: Setting<SettingKey>) => {
    const [value, meaning, unset] = HELP[s.env] ?? ['VALUE', ''];
    return {
      flag: flagName(s.env),
      env: s.env,
      aliases: [...(s.flagAliases ?? [])],
      envs: [s.env, ...(s.aliases ?? [])],
      value,
      meaning,
      default: unset ?? String(s.default),
    };
  });
}

function parse(s: Setting<SettingKey>, raw: string, source: string): string | number | boolean {
  switch (s.kind.type) {
    case 'string':
      return raw;
    case 'int': {
      if (!/^\d+$/.test(raw.trim()))
        throw new ConfigError(source, `expected an integer, got "${raw}"`);
      const n = Number(raw);
      if (n < s.kind.min || n > s.kind.max) {
        throw new ConfigError(source, `must be between ${s.kind.min} and ${s.kind.max}, got ${n}`);
      }
      return n;
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off', ''].includes(v)) return false;
      throw new ConfigError(source, `expected true or false, got "${raw}"`);
    }
    case 'enum':
      if (!s.kind.values.includes(raw)) {
        throw new ConfigError(source, `expected one of ${s.kind.values.join(', ')}, got "${raw}"`);
      }
      return raw;
  }
}

/**
 * Flags win over the environment, the environment over defaults. Unknown flags are the
 * caller's business (the CLI refuses them); unknown BUS_* variables are ignored.
 */
export function resolveConfig(
  env: Readonly<Record<string, string | undefined>>,
  flags: Readonly<Record<string, string | undefined>> = {},
): Config {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS as readonly Setting<SettingKey>[]) {
    const flagNames = [flagName(s.env), ...(s.flagAliases ?? [])];
    const flag = flagNames.find((f) => flags[f] !== undefined);
    const envName = [s.env, ...(s.aliases ?? [])].find(
      (e) => env[e] !== undefined && env[e] !== '',
    );
    if (flag !== undefined) out[s.key] = parse(s, flags[flag]!, `--${flag}`);
    else if (envName !== undefined) out[s.key] = parse(s, env[envName]!, envName);
    else out[s.key] = s.default;
  }
  const config = out as Config;
  if ((config.tlsCert == null) !== (config.tlsKey == null)) {
    throw new ConfigError('BUS_TLS_CERT', 'BUS_TLS_CERT and BUS_TLS_KEY must be set together');
  }
  if (config.databaseSchema != null && config.databaseUrl == null) {
    throw new ConfigError(
      'BUS_DATABASE_SCHEMA',
      'is a PostgreSQL schema: set BUS_DATABASE_URL too',
    );
  }
  return config;
}

const WEAK = [/^dev_secret$/i, /^change_?this/i, /^changeme$/i, /^secret$/i, /^password$/i];

/** Refuses well-known weak values: under 16 characters for keys, 12 for the password. */
export function checkSecretStrength(variable: string, value: string, minLength: number): void {
  if (WEAK.some((re) => re.test(value))) {
    throw new ConfigError(variable, 'is a well-known placeholder; set a strong random value');
  }
  if (value.length < minLength) {
    throw new ConfigError(variable, `must be at least ${minLength} characters`);
  }
}
