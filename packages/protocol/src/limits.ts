/** Ranges and defaults of PROTOCOL.md §5.1 and §8, shared by schemas, core and SDK. */
export const LIMITS = {
  goalMaxLength: 256,
  /** Flow control (PROTOCOL.md §6 [ext]): a limit in flight, a rate's limit and window. */
  flowMaxInFlight: { min: 1, max: 100_000 },
  flowRateLimit: { min: 1, max: 10_000 },
  flowRatePerSeconds: { min: 1, max: 86_400 },
  namespacePattern: '^[A-Za-z0-9_.-]{1,64}$',
  workerPattern: '^[A-Za-z0-9_.:-]{1,64}$',
  idPattern: '^[0-9a-f]{32}$',
  requestIdPattern: '^[A-Za-z0-9_.:-]{1,128}$',
  priority: { min: 0, max: 1000, default: 100 },
  delaySeconds: { min: 0, max: 2_592_000, default: 0 },
  maxAttempts: { min: 1, max: 20, default: 3 },
  backoffBaseSeconds: { min: 1, max: 3600, default: 5 },
  ttlSeconds: { min: 1, max: 2_592_000, default: 86_400 },
  extendSeconds: { min: 10, max: 3600 },
  claimWaitSeconds: { min: 0, max: 30 },
  resultWaitSeconds: { min: 0, max: 60 },
  kvTtlSeconds: { min: 1, max: 86_400, default: 600 },
  kvNameMaxLength: 256,
  payloadMaxDepth: 10,
  errorMaxLength: 500,
  idempotencyKeyMaxLength: 128,
  idempotencyWindowSeconds: 86_400,
  ownerMaxLength: 128,
  capabilitiesMax: 32,
  /** A claimer's worker id or capability: any text without control characters. */
  claimerNameMaxLength: 128,
  claimTokenMaxLength: 128,
  publisherMaxLength: 128,
  defaultNamespace: 'default',
  /** Schedules (issue 17): names per key, every N seconds, what GET of one shows. */
  scheduleNameMaxLength: 128,
  scheduleEverySeconds: { min: 1, max: 31_622_400 },
  scheduleCronMaxLength: 256,
  scheduleTimezoneMaxLength: 64,
  scheduleNextShown: 5,
  scheduleRunsShown: 20,
  /** A run not fulfilled this many seconds after its tick is missed. */
  scheduleDeadlineSeconds: { min: 1, max: 31_622_400 },
  /** Progress (issue 20): a message's characters, the data's bytes of JSON text. */
  progressMessageMaxLength: 200,
  progressDataMaxBytes: 1024,
  /** Batches (issue 21): items of one publish, fulfil or fail batch; intents of one claim. */
  batchMaxItems: 1000,
  claimMax: { min: 1, max: 100 },
} as const;
