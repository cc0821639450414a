export {
  IntentClient,
  AdminApi,
  type IntentClientOptions,
  type PublishOptions,
  type ClaimOptions,
  type ClaimOutcome,
  type ResultType,
  type AdminIntent,
} from './client.js';
export {
  WorkerRuntime,
  TextResult,
  text,
  type Job,
  type Handler,
  type ListenOptions,
  type ListenSummary,
  type RuntimeLogger,
  type WorkerRuntimeOptions,
} from './runtime.js';
export {
  IntentBusError,
  AuthError,
  RateLimitError,
  LeaseLostError,
  NotFoundError,
  ValidationError,
  ServerError,
  NetworkError,
} from './errors.js';
export { signature, signedHeaders, newNonce } from './signing.js';
export type {
  ClaimedIntent,
  PublishResponse,
  StatusObject,
  ResultObject,
  DeadLetter,
  KeyInfo,
  CleanupCounts,
  IntentStatus,
  Visibility,
} from '../../protocol/src/types.js';
