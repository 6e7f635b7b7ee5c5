// common.js - what every SDK demo page shares: one Herald client for the page
// (the SDK is served from ./sdk/, a link to clients/js/src) and a state badge.
import { Herald } from './sdk/index.js';

export const $ = (id) => document.getElementById(id);

/** A connected client whose state shows in #state; states are kept in window.__states for the tests. */
export function pageClient(options = {}) {
  // ?transports=http_stream,long_polling forces the fallbacks (to try them, and for the tests).
  const forced = new URLSearchParams(location.search).get('transports');
  if (forced) options = { ...options, transports: forced.split(',') };
  const client = new Herald(location.origin, { name: document.title, ...options });
  window.__states = [];
  window.__herald = client;
  const show = (text, cls) => {
    const el = $('state');
    if (el) { el.textContent = text; el.className = `state ${cls}`; }
  };
  client.on('state', ({ state }) => window.__states.push(state));
  client.on('connecting', ({ attempt, delay }) => show(delay !== undefined
    ? `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})` : 'connecting…', 'connecting'));
  client.on('connected', ({ transport }) => show(`connected (${transport})`, 'open'));
  client.on('disconnected', ({ code, reason, reconnect }) =>
    show(`disconnected (${code}${reason ? ': ' + reason : ''})${reconnect ? '' : ' — stopped'}`, 'closed'));
  client.on('error', (e) => console.warn('herald:', e.code, e.message));
  client.connect();
  return client;
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
