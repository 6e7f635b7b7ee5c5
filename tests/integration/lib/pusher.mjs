// lib/pusher.mjs - pusher-js clients for the Pusher tests: the options that
// point pusher-js at a local herald, and private/presence/signin auth signed
// in the test's process by the `pusher` server library (what an app's auth
// endpoint would answer).

/** pusher-js options for herald on 127.0.0.1:port (WebSocket only, no stats), plus `extra`. */
export function pusherOptions(port, extra = {}) {
  return {
    wsHost: '127.0.0.1', wsPort: port, forceTLS: false, enabledTransports: ['ws'], cluster: 'unused',
    disableStats: true, ...extra,
  };
}

/** Auth handlers signing with `signer` (a `pusher` library instance) as `user`. */
export function signedAuth(signer, user, userInfo = {}) {
  return {
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, channelName.startsWith('presence-')
        ? signer.authorizeChannel(socketId, channelName, { user_id: user, user_info: userInfo })
        : signer.authorizeChannel(socketId, channelName)),
    },
    userAuthentication: {
      customHandler: ({ socketId }, cb) => cb(null, signer.authenticateUser(socketId, { id: user })),
    },
  };
}

/** pusher-js's Node build (its bundled faye-websocket) arms a 30 s close
 * timer (API.CLOSE_TIMEOUT) when it closes a socket herald already closed —
 * after a terminate_connections (4009) — which kept a test file's process
 * alive for 30 s after its last test. Timers of exactly 30 s are unref'd:
 * they still fire while the process has work, and never hold it open. */
export function unrefCloseTimers() {
  const set = globalThis.setTimeout;
  globalThis.setTimeout = function setTimeoutUnref30s(fn, ms, ...args) {
    const t = set(fn, ms, ...args);
    if (ms === 30000) t.unref();
    return t;
  };
}
