/**
 * Prometheus metrics of a clustered service (`--workers N`). A scrape lands on one worker, which
 * asks the primary; the primary collects the registry of every worker that listens, adds its own
 * (`geofence_worker_restarts_total`, `geofence_workers`) and aggregates them with prom-client's
 * rules: counters and histograms summed, gauges by the aggregator each declares. Unclustered, a
 * service's registry is served as it is.
 */
import cluster, { type Worker } from 'node:cluster';
import {
  AggregatorRegistry,
  type MetricObjectWithValues,
  type MetricValue,
  type Registry,
} from 'prom-client';

/** One registry's metrics as `getMetricsAsJSON` gives them. */
type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** Worker → primary: send me the metrics of all workers. */
const AGGREGATE_REQUEST = 'geofence:metrics-aggregate-request';
/** Primary → worker: the aggregate exposition text, or why there is none. */
const AGGREGATE_RESPONSE = 'geofence:metrics-aggregate-response';
/** Primary → worker: send me your registry's metrics. */
const COLLECT_REQUEST = 'geofence:metrics-collect-request';
/** Worker → primary: my registry's metrics (`getMetricsAsJSON`). */
const COLLECT_RESPONSE = 'geofence:metrics-collect-response';

type Message =
  | { type: typeof AGGREGATE_REQUEST; id: number }
  | { type: typeof AGGREGATE_RESPONSE; id: number; text?: string; error?: string }
  | { type: typeof COLLECT_REQUEST; id: number }
  | { type: typeof COLLECT_RESPONSE; id: number; metrics: MetricsJson };

/** How long one side waits for the other before the scrape fails (503). */
const ANSWER_TIMEOUT_MS = 3000;

let nextId = 0;

/** The metrics message `m` of `type`, if it is one. */
function as<T extends Message['type']>(m: unknown, type: T): Extract<Message, { type: T }> | undefined {
  const x = m as Partial<Message> | null;
  return x?.type === type && typeof x.id === 'number' ? (x as Extract<Message, { type: T }>) : undefined;
}

/**
 * In a cluster worker: answers the primary's collection requests with `registry` (the one registry of
 * the service this worker runs). Does nothing outside a cluster worker.
 */
export function answerMetricsCollection(registry: Registry): void {
  if (!cluster.isWorker) return;
  process.on('message', (msg: unknown) => {
    const m = as(msg, COLLECT_REQUEST);
    if (!m) return;
    registry.getMetricsAsJSON().then(
      (metrics) => process.send?.({ type: COLLECT_RESPONSE, id: m.id, metrics } satisfies Message),
      // An answer with nothing: the primary aggregates the others rather than time out.
      () => process.send?.({ type: COLLECT_RESPONSE, id: m.id, metrics: [] } satisfies Message),
    );
  });
}

/**
 * The exposition text to serve for `registry`: the aggregate over all workers in a cluster worker
 * (rejects when the primary does not answer), the registry itself otherwise.
 */
export function prometheusText(registry: Registry): Promise<string> {
  if (!cluster.isWorker) return registry.metrics();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onMessage = (msg: unknown) => {
      const m = as(msg, AGGREGATE_RESPONSE);
      if (m?.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (typeof m.text === 'string') resolve(m.text);
      else reject(new Error(`cluster metrics unavailable: ${m.error ?? 'no answer'}`));
    };
    // The primary waits up to ANSWER_TIMEOUT_MS per worker, in parallel: allow for that and the hop.
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('cluster metrics unavailable: the primary did not answer'));
    }, 2 * ANSWER_TIMEOUT_MS);
    process.on('message', onMessage);
    process.send?.({ type: AGGREGATE_REQUEST, id } satisfies Message);
  });
}

/** One worker's metrics; a worker that exits meanwhile contributes nothing (its counts died with it). */
function collect(w: Worker): Promise<MetricsJson> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      w.off('message', onMessage);
      w.off('exit', onExit);
    };
    const onMessage = (msg: unknown) => {
      const m = as(msg, COLLECT_RESPONSE);
      if (m?.id !== id) return;
      done();
      resolve(m.metrics);
    };
    const onExit = () => {
      done();
      resolve([]);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`worker ${w.process.pid} did not answer`));
    }, ANSWER_TIMEOUT_MS);
    w.on('message', onMessage);
    w.once('exit', onExit);
    w.send({ type: COLLECT_REQUEST, id } satisfies Message);
  });
}

/**
 * In the cluster primary: answers the workers' aggregate requests from the workers `ready()` lists
 * (those that listen: a worker still starting has no metrics yet and could not answer) plus `own`.
 */
export function serveAggregateMetrics(own: Registry, ready: () => Worker[]): void {
  cluster.on('message', (worker: Worker, msg: unknown) => {
    const m = as(msg, AGGREGATE_REQUEST);
    if (!m) return;
    Promise.all([...ready().map(collect), own.getMetricsAsJSON()])
      .then((all) => AggregatorRegistry.aggregate(all).metrics())
      .then(
        (text) => worker.send({ type: AGGREGATE_RESPONSE, id: m.id, text } satisfies Message),
        (err: unknown) =>
          worker.send({
            type: AGGREGATE_RESPONSE,
            id: m.id,
            error: (err as Error).message,
          } satisfies Message),
      );
  });
}
