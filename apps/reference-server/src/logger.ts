/**
 * Structured JSON logging (pino) with redaction of secrets (SPEC §12.8): Authorization values, admin
 * and agent tokens, private keys and raw nonces never reach the log.
 */
import { destination, type Logger, pino, stdTimeFunctions } from 'pino';

/** The pino logger type used throughout the reference server. */
export type { Logger } from 'pino';

/** Paths pino replaces with `[redacted]` wherever they appear in a log object. */
export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  '*.*.authorization',
  'headers.cookie',
  '*.headers.cookie',
  'adminToken',
  '*.adminToken',
  'apiToken',
  '*.apiToken',
  'token',
  '*.token',
  'privateKey',
  '*.privateKey',
  'key',
  'tls.key',
  'nonce',
  '*.nonce',
  'secret',
  '*.secret',
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name. */
  level: string;
  /** Service name put on every line (`service`). */
  service: string;
  /** Write to this file instead of stdout (used by the demo to keep its terminal output readable). */
  file?: string | undefined;
}

/** Creates the process logger. */
export function createLogger(opts: LoggerOptions): Logger {
  const dest = opts.file ? destination({ dest: opts.file, mkdir: true, sync: false }) : undefined;
  return pino(
    {
      level: opts.level,
      base: { service: opts.service, pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}
