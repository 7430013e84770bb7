#!/usr/bin/env node
import cluster from 'node:cluster';
/**
 * `geofence` — the reference server CLI: collector, gateway, edge agent service, enrolment, registry
 * administration, offline record verification and the demo.
 */
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { type Config, ConfigError, type LoadConfigOptions, loadConfig, type Role } from './config.js';

const program = new Command();

interface CommonOpts {
  config?: string;
  dataDir?: string;
  port?: number;
  host?: string;
  logLevel?: string;
}

function intArg(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number.parseInt(v, 10);
}

function pageSize(v: string): number {
  const n = intArg(v);
  if (n < 1 || n > 1000) throw new InvalidArgumentError('expected 1-1000');
  return n;
}

function withCommon(cmd: Command, listener = true): Command {
  cmd.option('-c, --config <file>', 'configuration file (default: ./geofence.config.json when present)');
  cmd.option('-d, --data-dir <dir>', 'data directory (default: ./.geofence-data, env GEOFENCE_DATA_DIR)');
  cmd.option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env LOG_LEVEL)');
  if (listener) {
    cmd.option('-p, --port <port>', 'listen port (env PORT)', intArg);
    cmd.option('-H, --host <host>', 'listen address (default 127.0.0.1, env HOST)');
  }
  return cmd;
}

interface OutputOpts {
  output: 'table' | 'json';
}

/** `-o json|table` of the listing and reading commands (table by default). */
function withOutput(cmd: Command): Command {
  return cmd.addOption(
    new Option('-o, --output <format>', 'output format: table for people, json for scripts')
      .choices(['table', 'json'])
      .default('table'),
  );
}

/**
 * Exit status of an invalid configuration (docs/operations.md), distinct from 1 (a failure while
 * running) so that a supervisor can tell "fix the settings" from "try again".
 */
const EXIT_INVALID_CONFIG = 2;

/** Prints every configuration problem, one per line on stderr, and exits with status 2. */
function exitInvalidConfig(err: ConfigError): never {
  process.stderr.write(`geofence: ${err.message}\n`);
  process.exit(EXIT_INVALID_CONFIG);
}

/** Loads configuration for `role`, exiting with status 2 and every problem listed when invalid. */
function configFor(
  role: Role,
  o: CommonOpts,
  extra: Record<string, unknown> = {},
  required: readonly string[] = [],
) {
  const overrides: Record<string, unknown> = { ...extra };
  if (o.dataDir) overrides.dataDir = o.dataDir;
  if (o.port !== undefined) overrides.port = o.port;
  if (o.host) overrides.host = o.host;
  if (o.logLevel) overrides.logLevel = o.logLevel;
  const opts: LoadConfigOptions = { role, overrides, required };
  if (o.config) opts.configPath = o.config;
  try {
    return loadConfig(opts);
  } catch (err) {
    if (err instanceof ConfigError) exitInvalidConfig(err);
    throw err;
  }
}

/** A `--workers` value: a positive integer or `auto`. */
function workersArg(v: string): number | 'auto' {
  if (v === 'auto') return 'auto';
  if (!/^[1-9]\d*$/.test(v)) throw new InvalidArgumentError('expected a positive integer or auto');
  return Number.parseInt(v, 10);
}

/**
 * Runs a long-lived service until SIGINT/SIGTERM, then closes it. With more than one worker
 * (`clustered`), this process becomes the cluster primary and each forked worker (which runs this
 * same command) starts the service.
 */
async function serve(
  start: () => Promise<{ close(): Promise<void> }>,
  clustered?: { role: 'collector' | 'gateway'; cfg: Config },
): Promise<void> {
  let svc: { close(): Promise<void> };
  const { startPrimary, workerCount } = await import('./server/cluster.js');
  const workers = clustered ? workerCount(clustered.cfg.workers[clustered.role]) : 1;
  if (clustered && workers > 1 && cluster.isPrimary) {
    const { cfg, role } = clustered;
    const { createLogger } = await import('./logger.js');
    svc = await startPrimary({
      role,
      workers,
      serviceName: cfg.serviceName,
      scheme: cfg.tls.enabled ? 'https' : 'http',
      log: createLogger({ level: cfg.logLevel, service: cfg.serviceName, file: cfg.logFile }),
    });
  } else svc = await start();
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`geofence: ${sig}, shutting down\n`);
    svc.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

program
  .name('geofence')
  .description(
    'Reference collector, gateway and edge agent service for TPM-backed Proof of Residency and Proof of Geofencing.',
  )
  .showHelpAfterError()
  // Usage errors exit with status 2 (see the catch at the end), not commander's default 1.
  .exitOverride()
  .version('0.1.0');

withCommon(
  program
    .command('collector')
    .description('run the collector (default port 8444)')
    .option('--console', 'serve the web console at /console/ (env CONSOLE_ENABLED)')
    .option('-w, --workers <n>', 'worker processes on one port, or auto (env COLLECTOR_WORKERS)', workersArg),
).action(async (o: CommonOpts & { console?: boolean; workers?: number | 'auto' }) => {
  const cfg = configFor('collector', o, {
    ...(o.console ? { console: { enabled: true } } : {}),
    ...(o.workers !== undefined ? { workers: { collector: o.workers } } : {}),
  });
  const { startCollectorService } = await import('./server/collector.js');
  await serve(() => startCollectorService(cfg), { role: 'collector', cfg });
});

withCommon(
  program
    .command('gateway')
    .description('run the gateway (default port 8443)')
    .option('--collector-url <url>', 'collector base URL (env COLLECTOR_URL)')
    .option('--policy-enforcement', 'enable gateway policy enforcement (env GATEWAY_POLICY_ENFORCEMENT)')
    .option('-w, --workers <n>', 'worker processes on one port, or auto (env GATEWAY_WORKERS)', workersArg),
).action(
  async (
    o: CommonOpts & { collectorUrl?: string; policyEnforcement?: boolean; workers?: number | 'auto' },
  ) => {
    const extra: Record<string, unknown> = {};
    const gw: Record<string, unknown> = {};
    if (o.collectorUrl) gw.collectorUrl = o.collectorUrl;
    if (o.policyEnforcement) gw.policyEnforcement = true;
    if (Object.keys(gw).length) extra.gateway = gw;
    if (o.workers !== undefined) extra.workers = { gateway: o.workers };
    const cfg = configFor('gateway', o, extra);
    const { startGatewayService } = await import('./server/gateway.js');
    await serve(() => startGatewayService(cfg), { role: 'gateway', cfg });
  },
);

interface ResourceOpts extends CommonOpts {
  dir?: string;
  issuer?: string;
  jwksUrl?: string;
  caCert?: string;
  origin?: string;
  minTrustLevel?: string;
  allow?: string[];
  workloadDigest?: string[];
  maxAge?: number;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

withCommon(
  program
    .command('resource-server')
    .description(
      'serve the files of a directory only to PoG-credentialed, TPM-signed requests (default port 8446)',
    )
    .option('--dir <path>', 'directory to serve (env RESOURCE_DIR)')
    .option('--issuer <url>', 'trusted credential issuer: the collector base URL (env RESOURCE_ISSUER)')
    .option('--jwks-url <url>', 'issuer JWKS (default <issuer>/.well-known/jwks.json; env RESOURCE_JWKS_URL)')
    .option(
      '--ca-cert <file>',
      'issuer attestation CA certificate, to accept PoG certificates (env RESOURCE_CA_CERT_PATH)',
    )
    .option(
      '--origin <url>',
      'public origin clients sign @target-uri for (default: the listen URL; env RESOURCE_ORIGIN)',
    )
    .option(
      '--min-trust-level <level>',
      'low|medium|high|highest (default low; env RESOURCE_MIN_TRUST_LEVEL)',
    )
    .option('--allow <region[/state[/city]]>', 'allowed area, repeatable', collect)
    .option('--workload-digest <sha256>', 'approved workload image digest, repeatable', collect)
    .option(
      '--max-age <seconds>',
      'maximum age of the location evidence (env RESOURCE_MAX_AGE_SECONDS)',
      intArg,
    ),
).action(async (o: ResourceOpts) => {
  const r: Record<string, unknown> = {};
  if (o.dir) r.dir = o.dir;
  if (o.issuer) r.issuer = o.issuer;
  if (o.jwksUrl) r.jwksUrl = o.jwksUrl;
  if (o.caCert) r.caCertPath = o.caCert;
  if (o.origin) r.origin = o.origin;
  if (o.minTrustLevel) r.minTrustLevel = o.minTrustLevel;
  if (o.allow) {
    r.allow = o.allow.map((a) => {
      const [region, state, city] = a.split('/');
      return { region, ...(state ? { state } : {}), ...(city ? { city } : {}) };
    });
  }
  if (o.workloadDigest) r.workloadDigests = o.workloadDigest;
  if (o.maxAge !== undefined) r.maxAgeSeconds = o.maxAge;
  const cfg = configFor('resource', o, Object.keys(r).length ? { resource: r } : {}, [
    'resource.dir',
    'resource.issuer',
  ]);
  const { startResourceServer } = await import('./server/resource.js');
  await serve(() => startResourceServer(cfg));
});

interface AgentOpts extends CommonOpts {
  name?: string;
  gatewayUrl?: string;
  tcti?: string;
  stateDir?: string;
  interval?: number;
}

function agentOverrides(o: AgentOpts): Record<string, unknown> {
  const a: Record<string, unknown> = {};
  if (o.name) a.name = o.name;
  if (o.gatewayUrl) a.gatewayUrl = o.gatewayUrl;
  if (o.tcti) a.tcti = o.tcti;
  if (o.stateDir) a.stateDir = o.stateDir;
  if (o.interval !== undefined) a.intervalSeconds = o.interval;
  return Object.keys(a).length ? { agent: a } : {};
}

function agentFlags(cmd: Command): Command {
  return cmd
    .option('-n, --name <agent_name>', 'agent name (env AGENT_NAME)')
    .option('-g, --gateway-url <url>', 'gateway base URL (env GATEWAY_URL)')
    .option('--tcti <tcti>', 'TPM TCTI string (env TPM2TOOLS_TCTI)')
    .option('--state-dir <dir>', 'agent state directory (default ~/.geofence/<agent_name>)');
}

withCommon(
  agentFlags(
    program.command('agent').description('run the edge metrics agent service (default port 8442, loopback)'),
  ).option('--interval <seconds>', 'seconds between periodic sends, 0 = only on request', intArg),
).action(async (o: AgentOpts) => {
  const cfg = configFor('agent', o, agentOverrides(o), ['agent.name']);
  const { startAgentFromConfig } = await import('./agent-service/from-config.js');
  await serve(() => startAgentFromConfig(cfg));
});

withCommon(
  withOutput(
    agentFlags(
      program
        .command('enroll')
        .description("enrol this host's agent with the collector (Proof of Residency)"),
    ),
  ),
  false,
).action(async (o: AgentOpts & OutputOpts) => {
  const cfg = configFor('cli', o, agentOverrides(o), ['agent.name']);
  const { enrollFromConfig } = await import('./agent-service/from-config.js');
  const { printFields, printJson } = await import('./output.js');
  const result = await enrollFromConfig(cfg);
  if (o.output === 'json') printJson(result);
  else printFields(result);
});

withCommon(
  program
    .command('swtpm')
    .description('development only: run a software TPM (swtpm) with an EK certificate until Ctrl-C'),
  false,
).action(async (o: CommonOpts) => {
  const cfg = configFor('cli', o);
  const { runSwtpm } = await import('./dev-swtpm.js');
  await serve(() => runSwtpm(cfg.dataDir, process.stdout));
});

const agents = program
  .command('agents')
  .description('administer the registry (allowlist) and pre-registrations');
withCommon(
  withOutput(agents.command('list').description('list registered and pre-registered agents')),
  false,
).action(async (o: CommonOpts & OutputOpts) => {
  const { agentsList } = await import('./admin.js');
  await agentsList(configFor('cli', o), o.output);
});
withCommon(
  withOutput(agents.command('show').argument('<agent_name>').description('show one agent record')),
  false,
).action(async (name: string, o: CommonOpts & OutputOpts) => {
  const { agentsShow } = await import('./admin.js');
  process.exitCode = await agentsShow(configFor('cli', o), name, o.output);
});
withCommon(
  agents
    .command('add')
    .argument('<agent_name>')
    .description('pre-register an agent: it becomes active when it completes enrolment')
    .requiredOption('--region <region>', 'allowed region, e.g. US')
    .option('--state <state>', 'allowed state, e.g. California')
    .option('--city <city>', 'allowed city, e.g. "Santa Clara"')
    .option('--fence <file>', 'GeoJSON Polygon/MultiPolygon file the agent must be inside')
    .addOption(new Option('--ek-hash <sha256>', 'the EK the agent must present (hex SHA-256 of its SPKI)'))
    .option('--any-ek', 'accept any EK whose certificate chains to the EK CA bundle (default)'),
  false,
).action(
  async (
    name: string,
    o: CommonOpts & { region: string; state?: string; city?: string; fence?: string; ekHash?: string },
  ) => {
    const { agentsAdd } = await import('./admin.js');
    process.exitCode = await agentsAdd(configFor('cli', o), name, o);
  },
);
for (const [verb, status, text] of [
  ['approve', 'active', 'approve a pending agent'],
  ['revoke', 'revoked', 'revoke an agent (effective at its next request)'],
] as const) {
  withCommon(agents.command(verb).argument('<agent_name>').description(text), false).action(
    async (name: string, o: CommonOpts) => {
      const { agentsSetStatus } = await import('./admin.js');
      process.exitCode = await agentsSetStatus(configFor('cli', o), name, status);
    },
  );
}

withCommon(
  withOutput(
    program
      .command('verify-record')
      .argument('<record_id>')
      .description('re-verify a stored record offline against the registry (data provenance)'),
  ),
  false,
).action(async (id: string, o: CommonOpts & OutputOpts) => {
  const { verifyRecordCommand } = await import('./verify-record.js');
  process.exitCode = await verifyRecordCommand(configFor('cli', o), id, o.output);
});

withCommon(
  withOutput(
    program
      .command('doctor')
      .description(
        'check TPM, EK certificate, TLS trust and clock skew vs the collector, gpsd fix and Redis; exit 1 if any fails',
      )
      .option('--tcti <tcti>', 'TPM TCTI string (env TPM2TOOLS_TCTI)')
      .option(
        '-u, --url <url>',
        'service to check TLS and clock against (default: GATEWAY_URL, else COLLECTOR_URL)',
      )
      .option('--timeout <ms>', 'deadline of each check', intArg, 5000),
  ),
  false,
).action(async (o: CommonOpts & OutputOpts & { tcti?: string; url?: string; timeout: number }) => {
  const cfg = configFor('cli', o, agentOverrides(o));
  const { doctorCommand } = await import('./doctor.js');
  process.exitCode = await doctorCommand(cfg, { url: o.url, timeoutMs: o.timeout }, o.output);
});

const records = program.command('records').description('read the durable record store (accepted messages)');
withCommon(
  withOutput(
    records
      .command('list')
      .description('list stored records, oldest first, one page at a time')
      .option('-a, --agent <agent_name>', 'only records of this agent')
      .option('--since <time>', 'only records received at or after this ISO 8601 time')
      .option('--after <cursor>', 'the page after this cursor (printed as "next")', intArg)
      .option('-l, --limit <n>', 'page size, 1-1000', pageSize, 100),
  ),
  false,
).action(
  async (o: CommonOpts & OutputOpts & { agent?: string; since?: string; after?: number; limit: number }) => {
    const { recordsList } = await import('./records-cli.js');
    process.exitCode = await recordsList(configFor('cli', o), o, o.output);
  },
);
withCommon(
  withOutput(records.command('show').argument('<record_id>').description('show one stored record')),
  false,
).action(async (id: string, o: CommonOpts & OutputOpts) => {
  const { recordsShow } = await import('./records-cli.js');
  process.exitCode = await recordsShow(configFor('cli', o), id, o.output);
});

withCommon(
  program
    .command('demo')
    .description('run the end-to-end demo: swtpm per host, enrolment, all scenarios in both modes')
    .addOption(
      new Option('-m, --mode <mode>', 'run one mode only')
        .choices(['standard', 'gateway-policy-enforcement', 'gateway-allowlist', 'both'])
        .default('both'),
    )
    .option('--clean', 'delete the run directory (logs, registry, records) at the end'),
  false,
).action(async (o: CommonOpts & { mode: string; clean?: boolean }) => {
  const cfg = configFor('cli', o);
  const { runDemo } = await import('./demo/run.js');
  const mode = o.mode === 'gateway-allowlist' ? 'gateway-policy-enforcement' : o.mode;
  const code = await runDemo({
    dataDir: cfg.dataDir,
    mode: mode as 'both' | 'standard' | 'gateway-policy-enforcement',
    keep: o.clean !== true,
    out: process.stdout,
  });
  // Everything the demo started is stopped by now; do not wait for stray handles (e.g. pooled sockets).
  process.exit(code);
});

program
  .command('completion')
  .description('print a shell completion script (bash: source <(geofence completion bash))')
  .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
  .action(async (shell: 'bash' | 'zsh') => {
    const { completionScript } = await import('./completion.js');
    process.stdout.write(completionScript(program, shell));
  });

/**
 * Exit status of a usage error (unknown command or option, invalid `-o` format, missing argument):
 * commander has printed the error and the help by then. `--help` and `--version` exit 0.
 */
const EXIT_USAGE = 2;

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  // A setting only a command checks (the agent name of `geofence enroll`) is a configuration error too.
  if (err instanceof ConfigError) exitInvalidConfig(err);
  // Any other failure: one line on stderr, status 1 (a multi-line message, e.g. of a library, is joined;
  // a zod error — of any copy of zod a dependency bundles — is named by its issues, not dumped as JSON).
  const issues = (err as { name?: string; issues?: Array<{ path: PropertyKey[]; message: string }> }).issues;
  const message =
    (err as Error).name === 'ZodError' && Array.isArray(issues)
      ? `invalid data: ${issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`
      : ((err as Error).message ?? String(err));
  process.stderr.write(`geofence: ${message.replace(/\s*\n\s*/g, ' ').trim()}\n`);
  process.exit(1);
});
