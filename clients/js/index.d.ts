// index.d.ts - hand-written type definitions of herald-client (src/*.js).

export declare const VERSION: string;
export type TransportName = 'websocket' | 'http_stream' | 'long_polling';
export declare const TRANSPORTS: readonly TransportName[];
export type State = 'disconnected' | 'connecting' | 'connected';

export declare const ErrorCodes: Readonly<{
  TIMEOUT: 1; DISCONNECTED: 2; QUEUE_FULL: 3; CLIENT_CLOSED: 4; NO_TRANSPORT: 5;
  UNSUBSCRIBED: 6; ALREADY_SUBSCRIBED: 7; TOKEN: 8; BAD_ARGUMENT: 9; PROTOCOL: 10;
}>;

/** Every failure: code 1-99 client-side, 100-115 server replies, 1000-4999 disconnect codes. */
export declare class HeraldError extends Error {
  constructor(code: number, message: string, opts?: { temporary?: boolean; detail?: string; cause?: unknown });
  readonly code: number;
  /** true when the same operation may succeed later */
  readonly temporary: boolean;
  readonly detail?: string;
  toJSON(): { name: string; code: number; message: string; temporary: boolean };
}
export declare class ReplyError extends HeraldError {
  constructor(err?: { code: number; message: string; temporary?: boolean; detail?: string });
}
export declare class DisconnectError extends HeraldError {
  constructor(code: number, reason: string, reconnect: boolean);
  readonly reason: string;
  readonly reconnect: boolean;
}
export declare class TimeoutError extends HeraldError { constructor(what: string); }
export declare class QueueFullError extends HeraldError { constructor(max: number); }
export declare function shouldReconnect(code: number): boolean;

export type Listener<T> = (ev: T) => void;

export declare class Emitter<Events extends Record<string, unknown> = Record<string, unknown>> {
  on<K extends keyof Events & string>(event: K, fn: Listener<Events[K]>): () => void;
  once<K extends keyof Events & string>(event: K, fn: Listener<Events[K]>): () => void;
  off<K extends keyof Events & string>(event: K, fn?: Listener<Events[K]>): this;
  emit<K extends keyof Events & string>(event: K, ev?: Events[K]): boolean;
  listenerCount(event: keyof Events & string): number;
}

export declare class Backoff {
  constructor(opts?: { minDelay?: number; maxDelay?: number; random?: () => number });
  minDelay: number;
  maxDelay: number;
  attempt: number;
  /** upper bound of attempt n's window: min(maxDelay, minDelay * 2^n) */
  ceiling(n?: number): number;
  /** a delay in [0, ceiling(attempt)], then attempt++ */
  next(): number;
  reset(): void;
}

export interface Codec {
  name: string;
  binary: boolean;
  subprotocol: string;
  encode(msgs: object[]): string | Uint8Array;
  decode(frame: string | Uint8Array): object[];
}
export declare const jsonCodec: Codec;
export declare const msgpackCodec: Codec;
export declare function msgpackEncode(value: unknown): Uint8Array;
export declare function msgpackDecodeAll(bytes: Uint8Array | ArrayBuffer): unknown[];

export interface GetTokenContext { reason: string }

export interface HeraldOptions {
  /** client name and version sent in connect (server logs) */
  name?: string;
  version?: string;
  /** connection token (JWT) */
  token?: string | null;
  /** called for a token when there is none, before it expires, on the server's refresh push and after 3005 */
  getToken?: ((ctx: GetTokenContext) => string | Promise<string>) | null;
  format?: 'json' | 'msgpack';
  codec?: Codec | null;
  /** transports in order of preference (default: websocket, http_stream, long_polling) */
  transports?: readonly TransportName[];
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  /** reply timeout of commands (not publish) and open timeout of transports, ms */
  timeout?: number;
  /** ms of silence before a heartbeat ping (0: the server's ping interval) */
  pingInterval?: number;
  pongTimeout?: number;
  pollTimeout?: number;
  /** ms between attempts to go back to WebSocket from a fallback (0: never) */
  upgradeInterval?: number;
  /** publications kept while offline */
  maxQueued?: number;
  /** refresh the token this many ms before it expires (0: only on the server's refresh push) */
  refreshAhead?: number;
  maxCommandsPerFrame?: number;
  /** a WebSocket constructor (Node 20: the ws package) */
  WebSocket?: unknown;
  /** a fetch function (for the HTTP transports) */
  fetch?: typeof fetch;
  random?: () => number;
}

export interface Publication<T = unknown> {
  channel: string;
  offset?: number;
  data: T;
  info?: ClientInfo;
}
export interface ClientInfo { client: string; user: string; info?: unknown; [k: string]: unknown }
export interface StreamPosition { epoch: string; offset: number }
export interface PublishResult { offset: number; epoch: string }
export interface HistoryResult<T = unknown> {
  epoch: string;
  offset: number;
  publications: { offset: number; data: T }[];
  /** true when more publications matched than this page holds: ask again with
   * `since: next` (forward) or `before: next` (reverse) */
  more?: boolean;
  /** with `more`: the position of this page's last publication */
  next?: StreamPosition;
}
export interface HistoryOptions {
  limit?: number;
  reverse?: boolean;
  /** only publications after this position */
  since?: StreamPosition;
  /** only publications before this position */
  before?: StreamPosition;
  /** unix milliseconds: only publications published at or after it */
  sinceTime?: number;
}
export interface PresenceResult { clients: Record<string, ClientInfo> }
export interface PresenceStatsResult { num_clients: number; num_users: number }

export interface HeraldEvents {
  [k: string]: unknown;
  state: { state: State; previous: State };
  connecting: { attempt: number; transport: TransportName; delay?: number };
  connected: { client: string; transport: TransportName; version: string | null; user: string | null };
  disconnected: { code: number; reason: string; reconnect: boolean };
  error: HeraldError;
  publication: Publication;
  transport: { transport: TransportName; failed?: boolean; upgrade?: boolean; reason?: string };
  refreshed: { expires: boolean; ttl?: number };
  /** 'no_websocket': connect() found no WebSocket implementation (printed with console.warn when nobody listens) */
  warning: { code: string; message: string };
}

export interface SubscribeOptions {
  /** resubscribe with recovery after a reconnect (default true; not for patterns) */
  recover?: boolean;
  /** start from a stored position (recover from there on the first subscribe) */
  since?: StreamPosition;
  /** subscription token (namespaces with subscribe = "token") */
  token?: string;
  getToken?: (channel: string) => string | Promise<string>;
  /** any JSON, sent with every subscribe (resubscribes too) to the backend's subscribe hook */
  data?: unknown;
}

export interface SubscriptionEvents {
  [k: string]: unknown;
  subscribing: { channel: string };
  subscribed: {
    channel: string; pattern?: boolean; epoch?: string; offset?: number;
    recoverable?: boolean; recovering?: boolean; recovered?: boolean;
  };
  publication: Publication;
  join: { channel: string; info: ClientInfo };
  leave: { channel: string; info: ClientInfo };
  recovered: { channel: string; publications: number; epoch: string; offset: number };
  recovery_failed: { channel: string; epoch: string; offset: number; previousEpoch: string | null; previousOffset: number | null };
  unsubscribed: { channel: string; code: number; reason: string };
  error: HeraldError;
}

export declare class Subscription extends Emitter<SubscriptionEvents> {
  readonly client: Herald;
  readonly channel: string;
  readonly pattern: boolean;
  readonly state: 'unsubscribed' | 'subscribing' | 'subscribed';
  readonly epoch: string | null;
  readonly offset: number | null;
  ready(timeoutMs?: number): Promise<Subscription>;
  unsubscribe(): void;
  publish(data: unknown, opts?: { idempotencyKey?: string }): Promise<PublishResult>;
  history(opts?: HistoryOptions): Promise<HistoryResult>;
  historyPages(opts?: HistoryOptions): AsyncGenerator<HistoryResult, void, undefined>;
  presence(): Promise<PresenceResult>;
  presenceStats(): Promise<PresenceStatsResult>;
  position(): StreamPosition | null;
}

export declare class Herald extends Emitter<HeraldEvents> {
  constructor(url: string, options?: HeraldOptions);
  readonly state: State;
  readonly clientId: string | null;
  readonly transportName: TransportName | null;
  readonly user: string | null;
  /** publications waiting for the connection or their acknowledgement */
  readonly queued: number;
  connect(): this;
  disconnect(): void;
  ready(timeoutMs?: number): Promise<this>;
  subscribe(channel: string, opts?: SubscribeOptions): Subscription;
  getSubscription(channel: string): Subscription | null;
  subscriptions(): Subscription[];
  publish(channel: string, data: unknown, opts?: { idempotencyKey?: string }): Promise<PublishResult>;
  history(channel: string, opts?: HistoryOptions): Promise<HistoryResult>;
  historyPages(channel: string, opts?: HistoryOptions): AsyncGenerator<HistoryResult, void, undefined>;
  presence(channel: string): Promise<PresenceResult>;
  presenceStats(channel: string): Promise<PresenceStatsResult>;
  rpc(method: string, data?: unknown): Promise<unknown>;
  ping(): Promise<number>;
}

export declare function resolveUrls(url: string): { http: string; ws: string };
export declare function isPattern(channel: string): boolean;
export declare function matchPattern(pattern: string, channel: string): boolean;
