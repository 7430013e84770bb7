import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BuiltRequest } from './signed-request.js';

/** Response of {@link send}. */
export interface SentResponse {
  status: number;
  contentType: string;
  body: Record<string, unknown>;
  headers: Headers;
}

/** Send a built request to `base` and parse the JSON answer. */
export async function send(base: string, r: BuiltRequest): Promise<SentResponse> {
  const res = await fetch(base + r.path, { method: r.method, headers: r.headers, body: r.body });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    body = { _raw: text };
  }
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    body,
    headers: res.headers,
  };
}

/** Listen on 127.0.0.1:0 and return the base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Close a server (and its keep-alive connections). */
export async function close(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
