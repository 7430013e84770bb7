/**
 * Starts the OTLP/HTTP receiver (otlp-receiver-main.ts) as a child process and collects the data
 * points it decodes, so a test sees what a real receiver got over the network.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./otlp-receiver-main.ts', import.meta.url));

/** A data point as the receiver decoded it (times are nanosecond decimal strings). */
export interface ReceivedPoint {
  metric: string;
  type: string;
  service: string | undefined;
  start: string | undefined;
  time: string;
  value: unknown;
  attributes: Record<string, unknown>;
  temporality?: number;
  monotonic?: boolean;
}

/** A running receiver process. */
export interface OtlpReceiver {
  /** Base URL to use as `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  endpoint: string;
  /** Every point decoded so far. */
  points: ReceivedPoint[];
  /** Requests the receiver could not decode (must stay empty). */
  errors: string[];
  /** Stops the process (its port then refuses connections). */
  stop(): Promise<void>;
}

/** Spawns a receiver; `hang` accepts requests and never answers them. */
export async function startOtlpReceiver(mode: 'normal' | 'hang' = 'normal'): Promise<OtlpReceiver> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', MAIN, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const points: ReceivedPoint[] = [];
  const errors: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('OTLP receiver did not start')), 20_000);
    child.once('exit', (code) => reject(new Error(`OTLP receiver exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const j = JSON.parse(line) as { port?: number; points?: ReceivedPoint[]; error?: string };
      if (j.port) {
        clearTimeout(timer);
        resolve(j.port);
      }
      if (j.points) points.push(...j.points);
      if (j.error) errors.push(j.error);
    });
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    points,
    errors,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}
