export { startBus, type Bus, type BusOptions, type ReadyConfig } from './server.js';
export { resolveConfig, ConfigError, type Config } from './config.js';
export { resolveSecrets } from './secrets.js';
export { ManualClock, systemClock, type Clock, type Random } from './core/clock.js';
export { VERSION, PROTOCOL_VERSION } from './version.js';
export { runServe, serveMain } from './serve.js';
export {
  openTransfer,
  readExport,
  runImport,
  storeName,
  writeExport,
  TransferStoreError,
  type ExportOptions,
  type ImportSummary,
} from './store/transfer/transfer.js';
export {
  ImportConflictError,
  TransferFormatError,
  RECORD_TYPES,
  type Header as ExportHeader,
  type TransferBackend,
  type TransferCounts,
} from './store/transfer/format.js';
