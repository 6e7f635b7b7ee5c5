// usage.ts - a typed usage of herald-client, compiled with `tsc -p test/types`
// (noEmit) to check index.d.ts. Not run.
import {
  Herald, HeraldError, QueueFullError, ErrorCodes, Subscription, type Publication, type HeraldOptions,
} from 'herald-client';

interface ChatMessage { text: string; from: string }

async function main(): Promise<void> {
  const opts: HeraldOptions = {
    getToken: async () => (await fetch('/token')).text(),
    transports: ['websocket', 'long_polling'],
    maxQueued: 100,
    minReconnectDelay: 200,
  };
  const client = new Herald('http://127.0.0.1:8080', opts);
  client.on('connected', ({ client: id, transport }) => console.log(id.length, transport));
  client.on('disconnected', ({ code, reason, reconnect }) => console.log(code, reason, reconnect));
  client.on('error', (e) => console.log(e.code, e.temporary, e.message));
  client.connect();
  await client.ready(5000);

  const sub: Subscription = client.subscribe('chat:lobby', { recover: true });
  client.subscribe('chat:invite', { data: { invite: 'x7' } }); // for the backend's subscribe hook
  sub.on('publication', (p: Publication) => {
    const m = p.data as ChatMessage;
    console.log(p.offset, m.text);
  });
  sub.on('join', ({ info }) => console.log(info.client, info.user));
  sub.on('recovery_failed', ({ previousOffset }) => console.log(previousOffset));
  await sub.ready();
  const pos = sub.position();
  if (pos) console.log(pos.epoch, pos.offset);

  try {
    const { offset, epoch } = await client.publish('chat:lobby', { text: 'hi', from: 'me' });
    console.log(offset + 1, epoch.toUpperCase());
  } catch (e) {
    if (e instanceof QueueFullError) console.log('full', e.code === ErrorCodes.QUEUE_FULL);
    else if (e instanceof HeraldError) console.log(e.code);
  }
  const h = await sub.history({ limit: 10, reverse: true });
  h.publications.forEach((p) => console.log(p.offset));
  if (h.next) await sub.history({ limit: 10, reverse: true, before: h.next, sinceTime: Date.now() - 60_000 });
  for await (const page of client.historyPages('chat:lobby', { limit: 100 })) console.log(page.publications.length);
  const pr = await client.presence('chat:lobby');
  Object.values(pr.clients).forEach((c) => console.log(c.client, c.user));
  const st = await sub.presenceStats();
  console.log(st.num_clients + st.num_users);
  const answer: unknown = await client.rpc('chat.history', { limit: 10 });
  console.log(answer);
  const prices = client.subscribe('prices.>');
  prices.on('publication', ({ channel, data }) => console.log(channel, data));
  sub.unsubscribe();
  client.disconnect();
}
void main;
