// chat.js - the chat demo on the herald-client SDK.
//
// Channels (the `make run` config adds join/leave to the chat namespace and
// keeps no history for typing:*):
//   chat:lobby       messages {type:'msg', id, name, text}; history on join
//   chat:lobby.read  read receipts {name, upTo: offset of the last message read}
//   typing:lobby     ephemeral: {type:'typing', client, name} and {type:'here', client, name, ask}
//                    (names for the presence list, which only knows client ids)
//
// With ?backend=URL (`make run-backend`: examples/backend/server.mjs behind
// Herald's proxy hooks) the page logs in at the backend instead of making up a
// name: the session cookie goes with the connection, the connect hook names
// the user (no cookie: error 1000, the page shows a login link), each message
// comes back stored and rewritten by the publish hook (the name is the
// backend's, `seq` its number, used here in place of Herald's offset), and the
// history comes from the backend's `chat.history` RPC.
import { $, pageClient, escapeHtml } from './common.js';

const ROOM = 'chat:lobby';
const params = new URLSearchParams(location.search);
const BACKEND = /^https?:\/\//.test(params.get('backend') || '') ? params.get('backend') : '';
const NAMES = ['Ada', 'Grace', 'Linus', 'Ken', 'Barbara', 'Dennis', 'Margaret', 'Alan'];
let name = params.get('name') || `${NAMES[Math.floor(Math.random() * NAMES.length)]}-${Math.floor(Math.random() * 90 + 10)}`;
$('me').textContent = name;

const client = pageClient();
const messages = new Map(); // offset or local id -> {li, ...}
const names = new Map();    // client id -> name
const typing = new Map();   // name -> timeout
let lastRead = 0;
window.__chat = { received: [], name };

const room = client.subscribe(ROOM, { recover: true });
const reads = client.subscribe(`${ROOM}.read`, { recover: true });
const side = client.subscribe('typing:lobby', { recover: false });

function render(offset, m, pending = false) {
  let entry = messages.get(offset);
  if (!entry) {
    const li = document.createElement('li');
    entry = { li, m };
    messages.set(offset, entry);
    // keep the list in offset order (pending ones at the end)
    const after = [...$('messages').children].find((x) => Number(x.dataset.offset) > offset);
    $('messages').insertBefore(li, pending ? null : after || null);
    if (!pending) window.__chat.received.push(m);
  }
  entry.li.dataset.offset = pending ? '' : String(offset);
  entry.li.className = pending ? 'pending' : '';
  entry.li.innerHTML = `<span class="who">${escapeHtml(m.name)}</span>${escapeHtml(m.text)}` +
    (pending ? ' <span class="muted">(waiting for the connection)</span>' : '') + '<span class="read"></span>';
  $('messages').scrollTop = $('messages').scrollHeight;
  markRead();
}

// Backend mode: who am I (the backend's name for this connection's user), and a login link when refused.
if (BACKEND) {
  $('me').textContent = '…';
  client.on('connected', async ({ user }) => {
    try {
      const { users } = await client.rpc('chat.users', {});
      name = (users.find((u) => u.user === user) || {}).name || name;
      $('me').textContent = window.__chat.name = name;
    } catch (e) {
      console.warn('chat.users', e.message); // the backend is down or slow (116): the name stays
    }
  });
  client.on('error', (e) => {
    if (e.code !== 1000) return;
    client.disconnect();
    $('state').innerHTML = `${escapeHtml(e.message)}: <a href="${escapeHtml(BACKEND)}/">log in at the backend</a>`;
  });
}

room.on('publication', ({ offset, data }) => {
  if (data.type !== 'msg') return;
  const local = messages.get(data.id);
  if (local) { local.li.remove(); messages.delete(data.id); }
  render(BACKEND ? data.seq : offset, data);
  typingStopped(data.name);
});
room.on('subscribed', async ({ recovering }) => {
  if (recovering) return;
  if (BACKEND) {
    const h = await client.rpc('chat.history', { channel: ROOM, limit: 50 });
    for (const m of h.messages) if (!messages.has(m.seq)) render(m.seq, m);
    refreshPresence();
    return;
  }
  const h = await room.history({ limit: 50 });
  for (const p of h.publications) if (p.data.type === 'msg' && !messages.has(p.offset)) render(p.offset, p.data);
  refreshPresence();
});
room.on('join', refreshPresence);
room.on('leave', refreshPresence);

// Read receipts: who has read up to which message.
const readBy = new Map(); // name -> offset
reads.on('publication', ({ data }) => {
  if (data.name === name) return;
  readBy.set(data.name, Math.max(readBy.get(data.name) || 0, data.upTo));
  for (const [off, e] of messages) {
    if (typeof off !== 'number' || e.m.name !== name) continue;
    const who = [...readBy].filter(([, upTo]) => upTo >= off).map(([n]) => n);
    e.li.querySelector('.read').textContent = who.length ? `✓ read by ${who.join(', ')}` : '';
  }
});
function markRead() {
  if (document.visibilityState === 'hidden') return;
  const offs = [...messages.keys()].filter((k) => typeof k === 'number' && messages.get(k).m.name !== name);
  const top = offs.length ? Math.max(...offs) : 0;
  if (top > lastRead && client.state === 'connected') {
    lastRead = top;
    reads.publish({ name, upTo: top }).catch(() => {});
  }
}
document.addEventListener('visibilitychange', markRead);
client.on('connected', markRead);

// Presence: client ids from the server, names from 'here' announcements.
async function refreshPresence() {
  try {
    const { clients } = await room.presence();
    const ids = Object.keys(clients);
    if (ids.some((id) => !names.has(id) && id !== client.clientId)) announce(true);
    names.set(client.clientId, name);
    $('presence').innerHTML = ids.map((id) => `<span class="pill">${escapeHtml(names.get(id) || id.slice(0, 8))}</span>`).join(' ');
    window.__chat.presence = ids.map((id) => names.get(id) || id);
  } catch (e) {
    console.warn('presence', e.message);
  }
}
setInterval(refreshPresence, 5000);

function announce(ask) {
  side.publish({ type: 'here', client: client.clientId, name, ask }).catch(() => {});
}
side.on('subscribed', () => { announce(true); });
side.on('publication', ({ data }) => {
  if (data.client === client.clientId) return;
  if (data.type === 'here') {
    const known = names.get(data.client) === data.name;
    names.set(data.client, data.name);
    if (data.ask) announce(false);
    if (!known) refreshPresence();
  } else if (data.type === 'typing') {
    clearTimeout(typing.get(data.name));
    typing.set(data.name, setTimeout(() => typingStopped(data.name), 3000));
    showTyping();
  }
});
function typingStopped(who) {
  clearTimeout(typing.get(who));
  typing.delete(who);
  showTyping();
}
function showTyping() {
  const who = [...typing.keys()];
  $('typing').textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : '';
}

let lastTyping = 0;
$('text').addEventListener('input', () => {
  const now = Date.now();
  if (now - lastTyping < 1000 || client.state !== 'connected') return; // ephemeral: never queued
  lastTyping = now;
  side.publish({ type: 'typing', client: client.clientId, name }).catch(() => {});
});

let localId = 0;
$('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('text').value.trim();
  if (!text) return;
  $('text').value = '';
  lastTyping = 0;
  const id = `${name}-${Date.now()}-${++localId}`;
  const m = { type: 'msg', id, name, text };
  render(id, m, true);
  // Offline, the SDK queues it and sends it once the connection is back (exactly once).
  room.publish(m).catch((e) => {
    const e2 = messages.get(id);
    if (e2) e2.li.innerHTML += ` <span class="down">(not sent: ${escapeHtml(e.message)})</span>`;
  });
});
