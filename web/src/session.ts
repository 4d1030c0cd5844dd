// The login session: tokens in sessionStorage (gone with the tab), refreshed before they expire,
// and one `api()` helper that every module calls the platform through.

export type Role = 'operator' | 'dispatcher' | 'supervisor' | 'admin' | 'field_unit' | 'auditor';

export interface Me {
  username: string;
  role: Role;
  unit_id: string | null;
}

interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_at: number; // epoch ms
}

/** An error answer of the API (problem+json), with its status. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const KEY = 'safecity.session';
const REFRESH_MARGIN_MS = 60_000;

let tokens: Tokens | null = load();
let refreshTimer: number | undefined;
let refreshing: Promise<boolean> | null = null;
const logoutListeners: Array<() => void> = [];

function load(): Tokens | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Tokens) : null;
  } catch {
    return null;
  }
}

function store(answer: { access_token: string; refresh_token: string; expires_in: number }): void {
  tokens = {
    access_token: answer.access_token,
    refresh_token: answer.refresh_token,
    expires_at: Date.now() + answer.expires_in * 1000,
  };
  sessionStorage.setItem(KEY, JSON.stringify(tokens));
  scheduleRefresh();
}

function scheduleRefresh(): void {
  window.clearTimeout(refreshTimer);
  if (!tokens) return;
  const left = tokens.expires_at - Date.now();
  // a minute before expiry, or at 80 % of a short lifetime
  const wait = Math.max(1000, Math.min(left - REFRESH_MARGIN_MS, left * 0.8));
  refreshTimer = window.setTimeout(() => void refresh(), wait);
}

export function accessToken(): string {
  return tokens?.access_token ?? '';
}

export function hasSession(): boolean {
  return tokens !== null && tokens.expires_at > Date.now() - 1000;
}

export function onLogout(listener: () => void): void {
  logoutListeners.push(listener);
}

async function problemMessage(answer: Response): Promise<string> {
  try {
    const body = (await answer.json()) as { detail?: unknown };
    if (typeof body.detail === 'string') return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => (d as { msg?: string }).msg ?? '').join('; ');
  } catch {
    /* not JSON */
  }
  return `${answer.status} ${answer.statusText}`;
}

export async function login(username: string, password: string): Promise<Me> {
  const answer = await fetch('/api/v1/auth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }),
  });
  if (!answer.ok) throw new ApiError(answer.status, await problemMessage(answer));
  store(await answer.json());
  return me();
}

/** Rotate the tokens; false (and logged out) when the refresh token is no longer good. */
export function refresh(): Promise<boolean> {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    if (!tokens) return false;
    try {
      const answer = await fetch('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: tokens.refresh_token }),
      });
      if (!answer.ok) {
        if (answer.status === 401) clear();
        return false;
      }
      store(await answer.json());
      return true;
    } catch {
      scheduleRefresh(); // network trouble: try again later, the token may still be good
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function clear(): void {
  window.clearTimeout(refreshTimer);
  const had = tokens !== null;
  tokens = null;
  sessionStorage.removeItem(KEY);
  if (had) logoutListeners.forEach((listener) => listener());
}

export async function logout(): Promise<void> {
  const current = tokens;
  if (current) {
    await fetch('/api/v1/auth/revoke', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${current.access_token}` },
      body: JSON.stringify({ refresh_token: current.refresh_token }),
    }).catch(() => undefined);
  }
  clear();
}

/** Fetch with the bearer token; one refresh-and-retry on 401. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const send = () =>
    fetch(path, { ...init, headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${accessToken()}` } });
  let answer = await send();
  if (answer.status === 401 && tokens && (await refresh())) answer = await send();
  if (answer.status === 401) clear();
  return answer;
}

/** Call the API and parse JSON; an error answer throws ApiError with the problem's detail. */
export async function api<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  const answer = await request(path, init);
  if (!answer.ok) throw new ApiError(answer.status, await problemMessage(answer));
  if (answer.status === 204) return undefined as T;
  return (await answer.json()) as T;
}

/** Whether an endpoint exists on this platform: capabilities land one by one. */
export async function available(path: string): Promise<boolean> {
  try {
    const answer = await request(path);
    return answer.ok;
  } catch {
    return false;
  }
}

let paths: Promise<Set<string>> | null = null;

/** The API's paths, from its public description: which capabilities this platform has. */
export function apiPaths(): Promise<Set<string>> {
  paths ??= fetch('/api/v1/openapi.json')
    .then((answer) => answer.json() as Promise<{ paths?: Record<string, unknown> }>)
    .then((doc) => new Set(Object.keys(doc.paths ?? {})))
    .catch(() => new Set<string>());
  return paths;
}

export async function me(): Promise<Me> {
  return api<Me>('/api/v1/auth/me');
}

export function resumeSession(): void {
  if (tokens) scheduleRefresh();
}
