/**
 * Output of the CLI's listing and reading commands: `-o table` (aligned columns for people, the
 * default) or `-o json` (JSON only on stdout, for scripts). Errors go to stderr as one line
 * `geofence: …`, never to stdout.
 */

/** Output format of the listing and reading commands (`-o json|table`). */
export type OutputFormat = 'table' | 'json';

/** Writes one line to stdout. */
export const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

/** Writes one error line `geofence: …` to stderr. */
export const err = (s: string): void => {
  process.stderr.write(`geofence: ${s}\n`);
};

/** Prints a value as indented JSON. */
export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/** Prints rows as columns padded to the widest cell, two spaces apart (the first row is the header). */
export function printTable(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const r of rows)
    out(
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
}

/**
 * Prints an object's fields as a two-column table: strings as they are, other values as compact
 * JSON; undefined fields are left out.
 */
export function printFields(value: unknown): void {
  const rows: string[][] = [];
  for (const [k, v] of Object.entries((value ?? {}) as Record<string, unknown>)) {
    if (v === undefined) continue;
    rows.push([k, typeof v === 'string' ? v : JSON.stringify(v)]);
  }
  printTable(rows);
}
