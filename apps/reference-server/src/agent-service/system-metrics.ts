/**
 * System metrics of the edge host (the original agent's `MetricsGenerator`): CPU, memory, disk, load
 * and uptime, read from the OS without shelling out.
 */
import { statfs } from 'node:fs/promises';
import os from 'node:os';

/** One system metrics sample. */
export interface SystemMetrics {
  cpu_percent: number;
  cpu_count: number;
  memory_percent: number;
  memory_total_bytes: number;
  memory_available_bytes: number;
  disk_usage_percent: number;
  disk_total_bytes: number;
  disk_free_bytes: number;
  load_average: { '1m': number; '5m': number; '15m': number };
  uptime_seconds: number;
  process_uptime_seconds: number;
  hostname: string;
  platform: string;
}

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of os.cpus()) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
  }
  return { idle, total };
}

let lastCpu = cpuTimes();

/** CPU busy percentage since the previous call (first call: since process start of this module). */
function cpuPercent(): number {
  const now = cpuTimes();
  const dIdle = now.idle - lastCpu.idle;
  const dTotal = now.total - lastCpu.total;
  lastCpu = now;
  if (dTotal <= 0) return 0;
  return Math.round((1 - dIdle / dTotal) * 1000) / 10;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** Reads one sample; `diskPath` is the filesystem whose usage is reported (default `/`). */
export async function collectSystemMetrics(diskPath = '/'): Promise<SystemMetrics> {
  const total = os.totalmem();
  const free = os.freemem();
  let diskTotal = 0;
  let diskFree = 0;
  try {
    const s = await statfs(diskPath);
    diskTotal = s.blocks * s.bsize;
    diskFree = s.bavail * s.bsize;
  } catch {
    // statfs unsupported on this filesystem: report zeros rather than invent numbers
  }
  const [l1, l5, l15] = os.loadavg();
  return {
    cpu_percent: cpuPercent(),
    cpu_count: os.cpus().length,
    memory_percent: round1(((total - free) / total) * 100),
    memory_total_bytes: total,
    memory_available_bytes: free,
    disk_usage_percent: diskTotal > 0 ? round1(((diskTotal - diskFree) / diskTotal) * 100) : 0,
    disk_total_bytes: diskTotal,
    disk_free_bytes: diskFree,
    load_average: { '1m': round1(l1 ?? 0), '5m': round1(l5 ?? 0), '15m': round1(l15 ?? 0) },
    uptime_seconds: Math.round(os.uptime()),
    process_uptime_seconds: Math.round(process.uptime()),
    hostname: os.hostname(),
    platform: `${os.type()} ${os.release()}`,
  };
}
