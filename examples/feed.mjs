#!/usr/bin/env node
// feed.mjs - publishes demo data through Herald's server API (docs/api.md), for
// the metrics and ticker demos when no page generates it:
//
//   HERALD_API_KEY=<the key herald printed at start-up> node examples/feed.mjs [http://127.0.0.1:8080]
//
// 20 metrics samples a second to metrics.demo and 25 price updates a second to
// prices.MARKET.SYMBOL, in batches (POST /api/batch). Node 18+ (global fetch); Ctrl-C stops it.
const base = process.argv[2] || 'http://127.0.0.1:8080';
const key = process.env.HERALD_API_KEY;
if (!key) {
  console.error('set HERALD_API_KEY to the server API key (herald prints it at start-up)');
  process.exit(2);
}
const prices = {
  'prices.crypto.btc': 64000, 'prices.crypto.eth': 3200, 'prices.crypto.sol': 150,
  'prices.fx.eurusd': 1.08, 'prices.fx.usdjpy': 151.2, 'prices.fx.btc': 0.0000156,
  'prices.stocks.aapl': 190, 'prices.stocks.msft': 420, 'prices.stocks.nvda': 880,
};
let cpu = 35, rps = 1200;
async function tick() {
  const commands = [];
  cpu = Math.min(100, Math.max(0, cpu + (Math.random() - 0.5) * 8));
  rps = Math.max(0, rps + (Math.random() - 0.5) * 150);
  commands.push({ method: 'publish', params: { channel: 'metrics.demo', data: { t: Date.now(), cpu: Math.round(cpu * 10) / 10, rps: Math.round(rps) } } });
  for (const ch of Object.keys(prices)) {
    if (Math.random() < 0.14) {
      prices[ch] *= 1 + (Math.random() - 0.5) * 0.004;
      commands.push({ method: 'publish', params: { channel: ch, data: { price: prices[ch], t: Date.now() } } });
    }
  }
  const res = await fetch(`${base}/api/batch`, {
    method: 'POST', headers: { Authorization: `apikey ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ commands }),
  });
  if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
}
console.log(`publishing to ${base} (Ctrl-C to stop)`);
for (;;) {
  const t0 = Date.now();
  try { await tick(); } catch (e) { console.error(e.message); await new Promise((r) => setTimeout(r, 1000)); }
  await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - t0))));
}
