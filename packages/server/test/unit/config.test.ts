import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  checkSecretStrength,
  flagName,
  resolveConfig,
  serveFlags,
} from '../../src/config.js';

describe('resolveConfig', () => {
  it('has the defaults of PRODUCT.md', () => {
    const c = resolveConfig({});
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      dbPath: './intent-bus-data/bus.db',
      claimTimeoutSeconds: 60,
      maxBodyBytes: 65_536,
      rateLimitPerMinute: 60,
      maxOpenPerKey: 2000,
      cleanupIntervalSeconds: 60,
      maxWaitersPerKey: 100,
      maxWaiters: 10_000,
      retentionSeconds: 604_800,
      logLevel: 'info',
      requireSignatures: false,
      secret: null,
    });
  });

  it('reads the environment, PORT as an alias, and flags over both', () => {
    expect(resolveConfig({ PORT: '9000' }).port).toBe(9000);
    expect(resolveConfig({ BUS_PORT: '9001', PORT: '9000' }).port).toBe(9001);
    expect(resolveConfig({ BUS_PORT: '9001' }, { port: '9002' }).port).toBe(9002);
    expect(resolveConfig({}, { db: '/x/y.db' }).dbPath).toBe('/x/y.db');
    expect(resolveConfig({ BUS_REQUIRE_SIGNATURES: 'true' }).requireSignatures).toBe(true);
  });

  it('names the variable of a bad value', () => {
    expect(() => resolveConfig({ BUS_PORT: 'eighty' })).toThrow(/^BUS_PORT: expected an integer/);
    expect(() => resolveConfig({ BUS_PORT: '70000' })).toThrow(/^BUS_PORT: must be between/);
    expect(() => resolveConfig({ BUS_TRUST_PROXY: 'maybe' })).toThrow(/^BUS_TRUST_PROXY:/);
    expect(() => resolveConfig({ BUS_LOG_LEVEL: 'loud' })).toThrow(/^BUS_LOG_LEVEL:/);
    expect(() => resolveConfig({}, { 'claim-timeout-seconds': '0' })).toThrow(
      /^--claim-timeout-seconds:/,
    );
    expect(() => resolveConfig({ BUS_TLS_CERT: '/c.pem' })).toThrow(ConfigError);
  });

  it('takes BUS_DATABASE_SCHEMA (--database-schema) only with BUS_DATABASE_URL', () => {
    const url = 'postgres://db.example/bus';
    expect(resolveConfig({ BUS_DATABASE_URL: url }).databaseSchema).toBeNull();
    expect(
      resolveConfig({ BUS_DATABASE_URL: url, BUS_DATABASE_SCHEMA: 'bus' }).databaseSchema,
    ).toBe('bus');
    expect(resolveConfig({ BUS_DATABASE_URL: url }, { 'database-schema': 'b2' })).toMatchObject({
      databaseSchema: 'b2',
    });
    expect(() => resolveConfig({ BUS_DATABASE_SCHEMA: 'bus' })).toThrow(/^BUS_DATABASE_SCHEMA:/);
  });

  it('derives one flag per setting', () => {
    expect(flagName('BUS_CLAIM_TIMEOUT_SECONDS')).toBe('claim-timeout-seconds');
    expect(flagName('DASHBOARD_PASSWORD')).toBe('dashboard-password');
    const flags = serveFlags().map((f) => f.flag);
    expect(flags).toContain('port');
    expect(flags).toContain('db-path');
    expect(new Set(flags).size).toBe(flags.length);
  });

  it('refuses weak secrets', () => {
    expect(() => checkSecretStrength('BUS_SECRET', 'dev_secret', 16)).toThrow(/placeholder/);
    expect(() => checkSecretStrength('BUS_SECRET', 'change_this_please_now', 16)).toThrow(
      /placeholder/,
    );
    expect(() => checkSecretStrength('BUS_SECRET', 'short', 16)).toThrow(/at least 16/);
    expect(() => checkSecretStrength('BUS_SECRET', 'a'.repeat(16), 16)).not.toThrow();
  });
});
