/**
 * The protocol's wire types held to its JSON schemas, at compile time (`tsc -b`).
 *
 * The route handlers take their request types from the schemas themselves (BusApp's type
 * provider). The protocol also writes them out in types.ts, for the SDK, which ships them
 * and must depend on nothing, so cannot derive them. Here each written type must be the
 * type its schema gives (json-schema-to-ts's FromSchema, as the routes get it), or this
 * file does not compile: a field added, renamed or retyped in one and not the other fails
 * the build. Unknown members, which the schemas accept, are left out of the comparison.
 * Nothing here runs.
 */
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type {
  AdminIntentsQuery,
  ClaimQuery,
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
} from '@intent-bus/protocol';

/** The members a schema names: its type without the index signature of unknown members. */
type Named<T> = { [K in keyof T as string extends K ? never : K]: T[K] };

/** As the routes get it (http/context.ts BusTypeProvider): a defaulted member stays optional. */
type FromRequestSchema<S extends JSONSchema> = Named<
  FromSchema<S, { keepDefaultedPropertiesOptional: true }>
>;

/** True only when A and B are the same type (not merely assignable either way). */
type Same<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

type Holds<T extends true> = T;

type Enum<S> = S extends { readonly enum: readonly (infer E)[] } ? E : never;
type Props<S> = S extends { readonly properties: infer P } ? P : never;

export type ContractHolds = [
  Holds<Same<PublishRequest, FromRequestSchema<typeof schemas.publishBody>>>,
  Holds<Same<ClaimQuery, FromRequestSchema<typeof schemas.claimQuery>>>,
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
];
