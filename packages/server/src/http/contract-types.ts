/**
 * The protocol's wire types held to json-schema-to-ts, at compile time (`tsc -b`).
 *
 * The route handlers take their request types from the schemas through json-schema-to-ts
 * (BusApp's type provider). The protocol makes its wire types from the same schemas with a
 * FromSchema of its own (protocol/src/from-schema.ts), for the SDK, which ships them and
 * must depend on nothing. Here each must be the type json-schema-to-ts gives, or this file
 * does not compile: the SDK's types and the routes' cannot drift apart. Unknown members,
 * which the request schemas accept, are left out of the comparison. Nothing here runs.
 */
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type {
  AdminIntentsQuery,
  ClaimQuery,
  OutcomeQuery,
  FailBatchItem,
  FulfillBatchItem,
  PublishBatchItem,
  PublishBatchResponse,
  DeadListQuery,
  ExtendRequest,
  FailRequest,
  FulfillRequest,
  GenerateKeyRequest,
  IntentStatus,
  KvSetRequest,
  PublishRequest,
  PurgeRequest,
  ResultQuery,
  ResultType,
  RevokeKeyRequest,
  CatchUp,
  Overlap,
  ScheduleRequest,
  Visibility,
  schemas,
  AdminIntent,
  ClaimedIntent,
  DeadLetter,
  KeyInfo,
  PublishResponse,
  ResultObject,
  Schedule,
  ScheduleDetail,
  ScheduleRun,
  ScheduleTriggered,
  WorkerInfo,
  GoalInfo,
  StatusObject,
} from '@intent-bus/protocol';

/** The members a schema names: its type without the index signature of unknown members. */
type Named<T> = { [K in keyof T as string extends K ? never : K]: T[K] };

/** As the routes get it (http/context.ts BusTypeProvider): a defaulted member stays optional. */
type FromRequestSchema<S extends JSONSchema> = Named<
  FromSchema<S, { keepDefaultedPropertiesOptional: true }>
>;

/** An answer's type: every member it names (an answer has no others). */
type FromAnswerSchema<S extends JSONSchema> = FromRequestSchema<S>;

/** True only when A and B are the same type (not merely assignable either way). */
type Same<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

type Holds<T extends true> = T;

type Enum<S> = S extends { readonly enum: readonly (infer E)[] } ? E : never;
type Props<S> = S extends { readonly properties: infer P } ? P : never;

export type ContractHolds = [
  Holds<Same<PublishRequest, FromRequestSchema<typeof schemas.publishBody>>>,
  Holds<Same<ClaimQuery, FromRequestSchema<typeof schemas.claimQuery>>>,
  Holds<Same<OutcomeQuery, FromRequestSchema<typeof schemas.outcomeQuery>>>,
  Holds<Same<ExtendRequest, FromRequestSchema<typeof schemas.extendBody>>>,
  Holds<Same<FulfillRequest, FromRequestSchema<typeof schemas.fulfillBody>>>,
  Holds<Same<FailRequest, FromRequestSchema<typeof schemas.failBody>>>,
  Holds<Same<ResultQuery, FromRequestSchema<typeof schemas.resultQuery>>>,
  Holds<Same<KvSetRequest, FromRequestSchema<typeof schemas.kvSetBody>>>,
  Holds<Same<GenerateKeyRequest, FromRequestSchema<typeof schemas.generateKeyBody>>>,
  Holds<Same<RevokeKeyRequest, FromRequestSchema<typeof schemas.revokeKeyBody>>>,
  Holds<Same<PurgeRequest, FromRequestSchema<typeof schemas.purgeBody>>>,
  Holds<Same<AdminIntentsQuery, FromRequestSchema<typeof schemas.adminIntentsQuery>>>,
  Holds<Same<DeadListQuery, FromRequestSchema<typeof schemas.deadListQuery>>>,
  // The path parameters, which the routes read as strings.
  Holds<Same<{ id: string }, FromRequestSchema<typeof schemas.intentIdParams>>>,
  Holds<Same<{ intent_id: string }, FromRequestSchema<typeof schemas.deadLetterParams>>>,
  Holds<Same<{ name: string }, FromRequestSchema<typeof schemas.kvParams>>>,
  Holds<Same<ScheduleRequest, FromRequestSchema<typeof schemas.scheduleBody>>>,
  Holds<Same<{ name: string }, FromRequestSchema<typeof schemas.scheduleParams>>>,
  Holds<Same<Overlap, Enum<Props<typeof schemas.scheduleBody>['overlap']>>>,
  Holds<Same<CatchUp, Enum<Props<typeof schemas.scheduleBody>['catch_up']>>>,
  // The enumerations the answers use too: the same values as the requests accept.
  Holds<Same<Visibility, Enum<Props<typeof schemas.publishBody>['visibility']>>>,
  Holds<Same<ResultType, Enum<Props<typeof schemas.fulfillBody>['result_type']>>>,
  Holds<Same<IntentStatus, Enum<Props<typeof schemas.adminIntentsQuery>['status']>>>,
  // The answers.
  Holds<Same<PublishResponse, FromAnswerSchema<typeof schemas.publishResponse>>>,
  Holds<Same<ClaimedIntent, FromAnswerSchema<typeof schemas.claimedIntent>>>,
  Holds<Same<StatusObject, FromAnswerSchema<typeof schemas.statusObject>>>,
  Holds<Same<ResultObject, FromAnswerSchema<typeof schemas.resultObject>>>,
  Holds<Same<AdminIntent, FromAnswerSchema<typeof schemas.adminIntent>>>,
  Holds<Same<DeadLetter, FromAnswerSchema<typeof schemas.deadLetter>>>,
  Holds<Same<KeyInfo, FromAnswerSchema<typeof schemas.keyInfo>>>,
  Holds<Same<Schedule, FromAnswerSchema<typeof schemas.scheduleObject>>>,
  Holds<Same<ScheduleRun, FromAnswerSchema<typeof schemas.scheduleRun>>>,
  Holds<Same<ScheduleDetail, FromAnswerSchema<typeof schemas.scheduleDetail>>>,
  Holds<Same<ScheduleTriggered, FromAnswerSchema<typeof schemas.scheduleTriggered>>>,
  Holds<Same<WorkerInfo, FromAnswerSchema<typeof schemas.workerInfo>>>,
  Holds<Same<GoalInfo, FromAnswerSchema<typeof schemas.goalInfo>>>,
  // [ext] Batches (issue 21). (`ok: true`, a const, is boolean in from-schema.ts: those not here.)
  Holds<Same<PublishBatchItem, FromRequestSchema<typeof schemas.publishBatchItem>>>,
  Holds<Same<FulfillBatchItem, FromRequestSchema<typeof schemas.fulfillBatchItem>>>,
  Holds<Same<FailBatchItem, FromRequestSchema<typeof schemas.failBatchItem>>>,
  Holds<Same<PublishBatchResponse, FromAnswerSchema<typeof schemas.publishBatchResponse>>>,
];
