/**
 * Builds an `@geofence/agent` Agent from the reference-server configuration (`geofence agent`,
 * `geofence enroll`): TPM from `TPM2TOOLS_TCTI`, gateway from `GATEWAY_URL`, location from gpsd
 * (`GPSD_HOST`) or the static GEOGRAPHIC_* settings, trust anchor from `SSL_CA_PATH` or the demo CA.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Agent, createAgent, gpsdLocation, staticLocation } from '@geofence/agent';
import { ensureTokenFile } from '../admin-token.js';
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import { createLogger } from '../logger.js';
import { ensureDemoPki, resolveTls } from '../tls.js';
import { startAgentService } from './service.js';

function requireName(cfg: Config): string {
  if (!cfg.agent.name) throw new ConfigError(['agent.name (env AGENT_NAME, flag --name): required']);
  return cfg.agent.name;
}

async function trustAnchor(cfg: Config): Promise<string> {
  if (cfg.tls.caPath) return readFileSync(cfg.tls.caPath, 'utf8');
  return (await ensureDemoPki(cfg.dataDir)).ca;
}

/** Creates the agent described by `cfg`. */
export async function agentFromConfig(cfg: Config): Promise<Agent> {
  const name = requireName(cfg);
  const log = createLogger({ level: cfg.logLevel, service: `agent:${name}`, file: cfg.logFile });
  const location = cfg.agent.gpsdHost
    ? gpsdLocation({ host: cfg.agent.gpsdHost, port: cfg.agent.gpsdPort })
    : staticLocation({ region: cfg.agent.region, state: cfg.agent.state, city: cfg.agent.city });
  return createAgent({
    name,
    tpm: { tcti: cfg.agent.tcti },
    gateway: cfg.agent.gatewayUrl ?? 'https://127.0.0.1:8443',
    tls: { ca: await trustAnchor(cfg), ...(cfg.tls.insecureSkipVerify ? { insecureSkipVerify: true } : {}) },
    location,
    ...(cfg.agent.stateDir ? { stateDir: cfg.agent.stateDir } : {}),
    algorithm: cfg.agent.algorithm,
    logger: log,
  });
}

/** `geofence enroll`: runs the enrolment once and returns its result. */
export async function enrollFromConfig(cfg: Config): Promise<unknown> {
  const agent = await agentFromConfig(cfg);
  try {
    const r = await agent.enroll({ workload: { name: cfg.serviceName, version: '0.1.0' } });
    // A readable summary (the stored result also holds the AK blob, which is not for the terminal).
    return {
      agent_name: r.agent_name,
      status: r.status,
      keyid: r.keyid,
      alg: r.alg,
      ek_alg: r.ek_alg,
      platform_integrity: r.platform_integrity,
      agent_integrity: r.agent_integrity,
      workload: r.workload,
      enrolled_at: r.enrolled_at,
      attestation_result: r.attestation_result,
      state_dir: agent.state.dir,
      next:
        r.status === 'pending' ? `an operator must run: geofence agents approve ${r.agent_name}` : undefined,
    };
  } finally {
    await agent.close();
  }
}

/** The local API token: configured, or generated once into `<dataDir>/agent-token` (0600). */
export function ensureAgentToken(cfg: Config): string {
  return cfg.agent.apiToken || ensureTokenFile(cfg.dataDir, 'agent-token');
}

/** `geofence agent`: the edge metrics agent service. */
export async function startAgentFromConfig(
  cfg: Config & { port: number },
): Promise<{ close(): Promise<void> }> {
  const agent = await agentFromConfig(cfg);
  const name = requireName(cfg);
  const log = createLogger({ level: cfg.logLevel, service: cfg.serviceName, file: cfg.logFile });
  if (!['127.0.0.1', '::1', 'localhost'].includes(cfg.host)) {
    log.warn({ host: cfg.host }, 'agent service bound beyond loopback: protect the local API token');
  }
  const tls = cfg.tls.enabled ? await resolveTls(cfg) : undefined;
  const svc = await startAgentService({
    agent,
    agentName: name,
    log,
    token: ensureAgentToken(cfg),
    intervalSeconds: cfg.agent.intervalSeconds,
    allowedHosts: cfg.agent.allowedHosts,
    serviceName: cfg.serviceName,
    listen: {
      host: cfg.host,
      port: cfg.port,
      ...(tls ? { tls: { ...tls, minVersion: cfg.tls.minVersion } } : {}),
    },
  });
  log.info(
    { url: svc.url, agent: name, token_file: join(cfg.dataDir, 'agent-token') },
    'agent service listening',
  );
  return {
    close: async () => {
      await svc.close();
      await agent.close();
    },
  };
}
