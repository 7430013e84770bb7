/**
 * Console sessions: the login form exchanges the admin token for a random session id kept in an
 * `HttpOnly; Secure; SameSite=Strict` cookie (`__Host-` prefix: host-only, path `/`, HTTPS only),
 * so the token never appears in a URL and page scripts cannot read the credential. Each session
 * has its own CSRF token, which state-changing requests must echo in `X-CSRF-Token`. Sessions live
 * in this process only (a restart logs everyone out).
 */
import { randomBytes } from 'node:crypto';
import type { Request } from 'express';

/** Name of the session cookie. */
export const SESSION_COOKIE = '__Host-geofence-console';
/** Header carrying the CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';
/** Most sessions kept at once (oldest dropped first). */
const MAX_SESSIONS = 1000;

/** One console session. */
export interface ConsoleSession {
  csrfToken: string;
  expiresAt: number;
}

/** The value of cookie `name` in a `Cookie` header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** In-memory session table. */
export class ConsoleSessions {
  private readonly sessions = new Map<string, ConsoleSession>();

  /** @param ttlSeconds - lifetime of a session from login */
  constructor(private readonly ttlSeconds: number) {}

  /** Starts a session; returns its id (the cookie value) and the session. */
  create(now = Date.now()): { id: string; session: ConsoleSession } {
    this.prune(now);
    const id = randomBytes(32).toString('base64url');
    const session = {
      csrfToken: randomBytes(32).toString('base64url'),
      expiresAt: now + this.ttlSeconds * 1000,
    };
    this.sessions.set(id, session);
    if (this.sessions.size > MAX_SESSIONS) {
      const oldest = this.sessions.keys().next().value;
      if (oldest !== undefined) this.sessions.delete(oldest);
    }
    return { id, session };
  }

  /** The live session of a request's cookie, if any. */
  of(req: Request, now = Date.now()): { id: string; session: ConsoleSession } | undefined {
    const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (session.expiresAt <= now) {
      this.sessions.delete(id);
      return undefined;
    }
    return { id, session };
  }

  /** Whether session `id` exists and has not expired. */
  alive(id: string, now = Date.now()): boolean {
    const s = this.sessions.get(id);
    return s !== undefined && s.expiresAt > now;
  }

  /** Ends a session. */
  destroy(id: string): void {
    this.sessions.delete(id);
  }

  /** `Set-Cookie` value for a new session id. */
  cookie(id: string): string {
    return `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${this.ttlSeconds}; HttpOnly; Secure; SameSite=Strict`;
  }

  /** `Set-Cookie` value that removes the session cookie. */
  static clearCookie(): string {
    return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;
  }

  private prune(now: number): void {
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }
}
