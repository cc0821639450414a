export * from './errors.js';
export * from './limits.js';
export * as schemas from './schemas.js';
export { FIELD_MESSAGES } from './schemas.js';
export type * from './types.js';
export * from './signing.js';
export { CLEANUP_COUNTERS } from './cleanup.js';
export {
  rawMember,
  rawItems,
  withoutMember,
  withRawMembers,
  canonicalJsonText,
} from './raw-json.js';
