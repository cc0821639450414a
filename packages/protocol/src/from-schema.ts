/**
 * The TypeScript type of a JSON schema of schemas.ts, for the keywords they use: `type` (one
 * or a list), `enum`, `anyOf`, `properties` with `required`, `items`; `{}` is any JSON value. Members
 * the schema does not name are left out (a request may carry them; the bus ignores them).
 *
 * The protocol's wire types (types.ts) are made with it, so that the SDK, which ships them,
 * depends on nothing. The server holds each to json-schema-to-ts's FromSchema, which types
 * its route handlers (server/src/http/contract-types.ts): the two cannot disagree.
 */
export type FromSchema<S> = S extends { readonly enum: readonly (infer E)[] }
  ? E
  : S extends { readonly anyOf: readonly (infer A)[] }
    ? FromSchema<A>
    : S extends { readonly type: infer T }
      ? OfType<S, T extends readonly (infer U)[] ? U : T>
      : unknown;

type OfType<S, T> = T extends 'string'
  ? string
  : T extends 'number' | 'integer'
    ? number
    : T extends 'boolean'
      ? boolean
      : T extends 'null'
        ? null
        : T extends 'array'
          ? S extends { readonly items: infer I }
            ? FromSchema<I>[]
            : unknown[]
          : T extends 'object'
            ? ObjectOf<S>
            : never;

type RequiredOf<S> = S extends { readonly required: readonly (infer R)[] } ? R : never;

type ObjectOf<S> = S extends { readonly properties: infer P }
  ? Flat<
      {
        -readonly [K in keyof P as K extends RequiredOf<S> ? K : never]: FromSchema<P[K]>;
      } & {
        -readonly [K in keyof P as K extends RequiredOf<S> ? never : K]?: FromSchema<P[K]>;
      }
    >
  : Record<string, unknown>;

/** One object type instead of an intersection, as it reads. */
type Flat<T> = { [K in keyof T]: T[K] };
