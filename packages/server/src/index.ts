export { startBus, type Bus, type BusOptions, type ReadyConfig } from './server.js';
export { resolveConfig, ConfigError, type Config } from './config.js';
export { resolveSecrets } from './secrets.js';
export { ManualClock, systemClock, type Clock, type Random } from './core/clock.js';
export { VERSION, PROTOCOL_VERSION } from './version.js';
export { runServe, serveMain } from './serve.js';
