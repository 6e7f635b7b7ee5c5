// errors.js - every failure the SDK reports is a HeraldError (an Error) with
// a numeric `code`, a `message` and `temporary` (may succeed if retried).
//
// Code ranges do not overlap:
//   1-99       client-side conditions (the constants below)
//   100-115    the server's error replies (docs/protocol.md "Error codes")
//   1000-4999  WebSocket / disconnect codes (3005 token expired, 3500 invalid token...)

export const ErrorCodes = Object.freeze({
  TIMEOUT: 1,            // no reply within the configured timeout
  DISCONNECTED: 2,       // the connection was lost before the reply came
  QUEUE_FULL: 3,         // the offline publish queue is full (maxQueued)
  CLIENT_CLOSED: 4,      // client.disconnect() was called
  NO_TRANSPORT: 5,       // no transport could be opened (server down or all blocked)
  UNSUBSCRIBED: 6,       // the subscription was removed before the reply
  ALREADY_SUBSCRIBED: 7, // subscribe() twice to the same channel on one client
  TOKEN: 8,              // getToken() failed or returned nothing
  BAD_ARGUMENT: 9,       // a call with invalid arguments
  PROTOCOL: 10,          // the server sent something the SDK cannot understand
});

export class HeraldError extends Error {
  /**
   * @param {number} code
   * @param {string} message
   * @param {{temporary?: boolean, detail?: string, cause?: unknown}} [opts]
   */
  constructor(code, message, { temporary = false, detail, cause } = {}) {
    super(detail ? `${message}: ${detail}` : message);
    this.name = 'HeraldError';
    this.code = code;
    this.temporary = temporary;
    if (detail !== undefined) this.detail = detail;
    if (cause !== undefined) this.cause = cause;
  }

  toJSON() {
    return { name: this.name, code: this.code, message: this.message, temporary: this.temporary };
  }
}

/** The server answered a command with {"error": {...}}. */
export class ReplyError extends HeraldError {
  constructor({ code, message, temporary = false, detail } = {}) {
    super(Number(code) || 0, message || 'error', { temporary: !!temporary, detail });
    this.name = 'ReplyError';
  }
}

/** The connection ended: code is the close / disconnect code. */
export class DisconnectError extends HeraldError {
  constructor(code, reason, reconnect) {
    super(code, reason || 'disconnected', { temporary: !!reconnect });
    this.name = 'DisconnectError';
    this.reason = reason || '';
    this.reconnect = !!reconnect;
  }
}

export class TimeoutError extends HeraldError {
  constructor(what) {
    super(ErrorCodes.TIMEOUT, `timeout: ${what}`, { temporary: true });
    this.name = 'TimeoutError';
  }
}

export class QueueFullError extends HeraldError {
  constructor(max) {
    super(ErrorCodes.QUEUE_FULL, `publish queue full (${max} publications waiting for the connection)`,
      { temporary: true });
    this.name = 'QueueFullError';
  }
}

/** Whether a close/disconnect code means "come back" (docs/protocol.md). */
export function shouldReconnect(code) {
  if (code === 1002 || code === 1007 || code === 1009) return false;
  if (code >= 3500 && code <= 4999) return false;
  return true;
}
