// index.js - the herald-client package: a browser and Node 18+ client for the
// Herald real-time server (docs/sdk-js.md).
export { Herald, VERSION, TRANSPORTS, resolveUrls } from './client.js';
export { Subscription, isPattern, matchPattern } from './subscription.js';
export {
  HeraldError, ReplyError, DisconnectError, TimeoutError, QueueFullError, ErrorCodes, shouldReconnect,
} from './errors.js';
export { Backoff } from './backoff.js';
export { Emitter } from './emitter.js';
export { jsonCodec, msgpackCodec, msgpackEncode, msgpackDecodeAll } from './codec.js';
