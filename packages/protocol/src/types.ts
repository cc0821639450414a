/**
 * Wire types of Intent Protocol 2.1 (PROTOCOL.md §5). Every time is unix seconds.
 *
 * Each is the type of its JSON schema in schemas.ts (from-schema.ts, which depends on
 * nothing, so neither does the SDK that ships them): a field is added to its schema once.
 * The requests' schemas validate them in the server, whose route handlers get the same
 * types from json-schema-to-ts (held equal by server/src/http/contract-types.ts); the
 * answers' schemas are held to the bus's real answers by server/test/answers.test.ts.
 * Unknown members, which the request schemas accept, are not part of the types.
 */
import type { FromSchema } from './from-schema.js';
import type * as schemas from './schemas.js';

type Props<S extends { readonly properties: object }> = S['properties'];

export type IntentStatus = FromSchema<Props<typeof schemas.statusObject>['status']>;
export type Visibility = FromSchema<Props<typeof schemas.publishBody>['visibility']>;
export type ResultType = FromSchema<Props<typeof schemas.fulfillBody>['result_type']>;

/** POST /intent. */
export type PublishRequest = FromSchema<typeof schemas.publishBody>;
/** POST /claim's query string; numbers as the bus reads them. */
export type ClaimQuery = FromSchema<typeof schemas.claimQuery>;
/** [ext] The query of POST /fulfill/:id and /fail/:id: `next=1` and the claim's query. */
export type OutcomeQuery = FromSchema<typeof schemas.outcomeQuery>;
/** POST /extend_claim/:id. */
export type ExtendRequest = FromSchema<typeof schemas.extendBody>;
/** POST /fulfill/:id. */
export type FulfillRequest = FromSchema<typeof schemas.fulfillBody>;
/** POST /progress/:id [ext] (issue 20). */
export type ProgressRequest = FromSchema<typeof schemas.progressBody>;
/** The answer of POST /progress/:id [ext]. */
export type ProgressResponse = FromSchema<typeof schemas.progressResponse>;
/** An intent's last progress [ext]. */
export type Progress = NonNullable<FromSchema<typeof schemas.progressObject>>;
/** [ext] The data of one GET /events record: a change of an intent. */
export type IntentEvent = FromSchema<typeof schemas.intentEvent>;
/** POST /fail/:id. */
export type FailRequest = FromSchema<typeof schemas.failBody>;
/** GET /result/:id's query string. */
export type ResultQuery = FromSchema<typeof schemas.resultQuery>;
/** POST /set/:name. */
export type KvSetRequest = FromSchema<typeof schemas.kvSetBody>;
/** POST /admin/generate_key. */
export type GenerateKeyRequest = FromSchema<typeof schemas.generateKeyBody>;
/** POST /admin/revoke_key: one of the two. */
export type RevokeKeyRequest = FromSchema<typeof schemas.revokeKeyBody>;
/** POST /admin/purge. */
export type PurgeRequest = FromSchema<typeof schemas.purgeBody>;
/** GET /admin/intents's query string. */
export type AdminIntentsQuery = FromSchema<typeof schemas.adminIntentsQuery>;
/** GET /admin/dead's query string. */
export type DeadListQuery = FromSchema<typeof schemas.deadListQuery>;

export type Overlap = FromSchema<Props<typeof schemas.scheduleBody>['overlap']>;
export type CatchUp = FromSchema<Props<typeof schemas.scheduleBody>['catch_up']>;
/** PUT /schedules/:name: `cron` or `every`, not both. */
export type ScheduleRequest = FromSchema<typeof schemas.scheduleBody>;
/** The intent of a schedule's runs: the publish fields but `delay`. */
export type ScheduleIntent = ScheduleRequest['intent'];

/** A schedule as the bus answers it. */
export type Schedule = FromSchema<typeof schemas.scheduleObject>;
/** One run of a schedule: its intent, by the tick it is for. */
export type ScheduleRun = FromSchema<typeof schemas.scheduleRun>;
/** The alert of a schedule (on_failure). */
export type ScheduleAlert = FromSchema<typeof schemas.scheduleAlert>;
/** Why a run's alert was published. */
export type RunFailure = FromSchema<Props<typeof schemas.scheduleAlertPayload>['reason']>;
/** What became of a run: its status, `cancelled` (dead by an admin's cancel) or `missed`. */
export type RunOutcome = FromSchema<Props<typeof schemas.scheduleRun>['outcome']>;
/** The payload of a schedule's alert, before the members of on_failure.payload. */
export type ScheduleAlertPayload = FromSchema<typeof schemas.scheduleAlertPayload>;
/** GET /schedules/:name. */
export type ScheduleDetail = FromSchema<typeof schemas.scheduleDetail>;
/** POST /schedules/:name/trigger. */
export type ScheduleTriggered = FromSchema<typeof schemas.scheduleTriggered>;

export type PublishResponse = FromSchema<typeof schemas.publishResponse>;
/** POST /fulfill/:id's answer. */
export type FulfillResponse = FromSchema<typeof schemas.fulfillResponse>;
/** POST /fail/:id's answer. */
export type FailResponse = FromSchema<typeof schemas.failResponse>;
/** An error answer's body. */
export type ErrorAnswer = FromSchema<typeof schemas.errorBody>;
/** [ext] POST /intents (issue 21): the publish bodies, each with its own idempotency key. */
export type PublishBatchRequest = FromSchema<typeof schemas.publishBatchBody>;
/** [ext] One item of POST /intents. */
export type PublishBatchItem = FromSchema<typeof schemas.publishBatchItem>;
/** [ext] One item of POST /fulfill. */
export type FulfillBatchItem = FromSchema<typeof schemas.fulfillBatchItem>;
/** [ext] One item of POST /fail. */
export type FailBatchItem = FromSchema<typeof schemas.failBatchItem>;
/** [ext] POST /intents's answer: per item, its status and body. */
export type PublishBatchResponse = FromSchema<typeof schemas.publishBatchResponse>;
/** [ext] POST /fulfill's answer. */
export type FulfillBatchResponse = FromSchema<typeof schemas.fulfillBatchResponse>;
/** [ext] POST /fail's answer. */
export type FailBatchResponse = FromSchema<typeof schemas.failBatchResponse>;
export type ClaimedIntent = FromSchema<typeof schemas.claimedIntent>;
export type StatusObject = FromSchema<typeof schemas.statusObject>;
export type ResultObject = FromSchema<typeof schemas.resultObject>;
export type AdminIntent = FromSchema<typeof schemas.adminIntent>;
export type DeadLetter = FromSchema<typeof schemas.deadLetter>;
export type KeyInfo = FromSchema<typeof schemas.keyInfo>;
/** PUT /admin/flow/:namespace/:goal [ext]: a member not given stays, null clears. */
export type FlowRequest = FromSchema<typeof schemas.flowBody>;
/** A flow control as the bus answers it [ext]. */
export type FlowControlObject = FromSchema<typeof schemas.flowControl>;

/** [ext] A command an admin gave a worker (issue 18). */
export type WorkerCommand = NonNullable<WorkerInfo['command']>;
/** [ext] A worker as GET /workers and GET /admin/workers list it. */
export type WorkerInfo = FromSchema<typeof schemas.workerInfo>;
/** [ext] Why some open intents of a goal wait (GET /admin/goals). */
export type GoalWaitReason = FromSchema<typeof schemas.goalWaitReason>;
/** [ext] One goal of GET /admin/goals. */
export type GoalInfo = FromSchema<typeof schemas.goalInfo>;

export type { CleanupCounts } from './cleanup.js';
