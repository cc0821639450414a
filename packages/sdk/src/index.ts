export {
  IntentClient,
  AdminApi,
  ScheduleApi,
  type ScheduleSpec,
  type ExactSchedule,
  type ExactScheduleDetail,
  type IntentClientOptions,
  type PublishOptions,
  type ClaimOptions,
  type ClaimOutcome,
  type FulfillOptions,
  type ExactClaimedIntent,
  type ExactResultObject,
  type ExactAdminIntent,
  type DeadLetterDetail,
} from './client.js';
export { JsonText, jsonText } from './json-text.js';
/** The exact-JSON scanner the bus uses: a member's text out of a JSON text, texts into one. */
export { rawMember, withRawMembers } from '../../protocol/src/raw-json.js';
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
  QuotaError,
  RateLimitError,
  LeaseLostError,
  NotFoundError,
  ValidationError,
  ServerError,
  NetworkError,
} from './errors.js';
export { signature, signedHeaders, newNonce } from './signing.js';
// The protocol's wire types: the one copy, shared with the bus.
export type {
  ClaimedIntent,
  PublishResponse,
  StatusObject,
  ResultObject,
  AdminIntent,
  DeadLetter,
  KeyInfo,
  CleanupCounts,
  IntentStatus,
  Visibility,
  ResultType,
  Schedule,
  ScheduleDetail,
  ScheduleIntent,
  ScheduleRun,
  ScheduleTriggered,
  Overlap,
  CatchUp,
  FlowControlObject,
  FlowRequest,
} from '../../protocol/src/types.js';
