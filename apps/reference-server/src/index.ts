/**
 * Reference collector, gateway and edge agent service composed from the @geofence SDKs; CLI `geofence`.
 *
 * The programmatic entry points are what the CLI uses: {@link startCollector}, {@link startGateway},
 * {@link startAgentService} and {@link runDemo}; configuration goes through {@link loadConfig}.
 *
 * @packageDocumentation
 */
export { startAgentService } from './agent-service/service.js';
export { type Config, ConfigError, configSchema, ENV_VARS, loadConfig, type Role } from './config.js';
export { type DemoOptions, runDemo } from './demo/run.js';
export { HeaderLog } from './header-log.js';
export { RateLimiter } from './rate-limit.js';
export { SqliteRecordStore } from './records.js';
export { createCollectorApp, type RunningCollector, startCollector } from './server/collector.js';
export { createGatewayApp, type RunningGateway, startGateway } from './server/gateway.js';
export { ensureDemoPki, type TlsMaterial } from './tls.js';
export { verifyStoredRecord } from './verify-record.js';
