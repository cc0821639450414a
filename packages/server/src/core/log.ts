/**
 * The logger the bus's parts below HTTP are given: the pino logger of the bus in
 * production (Fastify's is one), anything with these methods in a test. One type, so that
 * no part depends on Fastify to log.
 */
export interface Log {
  info(obj: object, msg: string): void;
  info(msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
