// The live connection: one WebSocket to /api/v1/live, reconnecting with backoff, token in the query
// (browsers cannot set headers on a WebSocket).

import { accessToken, refresh } from './session';

export interface LiveEvent {
  id: string;
  kind: string;
  source?: string;
  occurred_at?: string;
  location?: { lat: number; lon: number } | null;
  payload: Record<string, unknown>;
}

export type LiveState = 'connecting' | 'live' | 'offline';

export interface LiveHandlers {
  event(topic: string, event: LiveEvent): void;
  state(state: LiveState, detail: string): void;
  /** Events were lost (slow client or reconnect): reload whole views. */
  resync(): void;
}

export class LiveConnection {
  private socket: WebSocket | null = null;
  private backoff = 1000;
  private closed = false;
  private pinger: number | undefined;
  private retry: number | undefined;

  constructor(private readonly topics: string[], private readonly handlers: LiveHandlers) {}

  open(): void {
    this.closed = false;
    this.connect();
  }

  close(): void {
    this.closed = true;
    window.clearTimeout(this.retry);
    window.clearInterval(this.pinger);
    this.socket?.close(1000, 'bye');
    this.socket = null;
  }

  private connect(): void {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = new URLSearchParams({ access_token: accessToken(), topics: this.topics.join(','), batch: '1' });
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/live?${query}`);
    this.socket = socket;
    this.handlers.state('connecting', 'connecting…');
    let wasLive = false;
    const handle = (data: Record<string, unknown>): void => {
      if (data.type === 'batch') {
        for (const one of data.messages as Record<string, unknown>[]) handle(one);
      } else if (data.type === 'subscribed') {
        wasLive = true;
        this.backoff = 1000;
        this.handlers.state('live', `live: ${(data.topics as string[]).join(', ')}`);
        this.handlers.resync();
      } else if (data.type === 'event') {
        this.handlers.event(String(data.topic), data.event as LiveEvent);
      } else if (data.type === 'gap') {
        this.handlers.resync();
      }
    };
    socket.onmessage = (message) => handle(JSON.parse(String(message.data)) as Record<string, unknown>);
    socket.onclose = (close) => {
      window.clearInterval(this.pinger);
      if (this.closed) return;
      this.handlers.state('offline', `offline (${close.code || 'network'}), retrying`);
      if (close.code === 4401) void refresh(); // the token expired while we were away
      const wait = wasLive ? 1000 : this.backoff;
      this.backoff = Math.min(this.backoff * 2, 15_000);
      this.retry = window.setTimeout(() => this.connect(), wait);
    };
    this.pinger = window.setInterval(() => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'ping' }));
    }, 25_000);
  }
}
