// Node module hook for tests: makes `better-sqlite3` unresolvable, as on a host without a C toolchain.
import { register } from 'node:module';

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === 'better-sqlite3' || specifier.startsWith('better-sqlite3/')) {
    const err = new Error('Cannot find package better-sqlite3 (blocked by test)');
    err.code = 'ERR_MODULE_NOT_FOUND';
    throw err;
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);
