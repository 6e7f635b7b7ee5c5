// ticker.js - prices on hierarchical channels prices.MARKET.SYMBOL, shown
// through ONE wildcard subscription that the select box swaps.
import { $, pageClient, escapeHtml } from './common.js';

export const SYMBOLS = {
  'prices.crypto.btc': 64000, 'prices.crypto.eth': 3200, 'prices.crypto.sol': 150,
  'prices.fx.eurusd': 1.08, 'prices.fx.usdjpy': 151.2, 'prices.fx.btc': 0.0000156,
  'prices.stocks.aapl': 190, 'prices.stocks.msft': 420, 'prices.stocks.nvda': 880,
};
const client = pageClient();
const rows = new Map(); // channel -> {tr, price, n}
let sub = null;
window.__ticker = { rows };

function show(pattern) {
  if (sub) sub.unsubscribe();
  rows.clear();
  $('rows').innerHTML = '';
  sub = client.subscribe(pattern, { recover: false });
  sub.on('subscribed', () => { $('subinfo').textContent = `subscribed to ${pattern}`; });
  sub.on('publication', ({ channel, data }) => {
    let r = rows.get(channel);
    if (!r) {
      const tr = document.createElement('tr');
      r = { tr, price: data.price, n: 0 };
      rows.set(channel, r);
      const after = [...$('rows').children].find((x) => x.dataset.channel > channel);
      tr.dataset.channel = channel;
      $('rows').insertBefore(tr, after || null);
    }
    const change = data.price - r.price;
    r.price = data.price;
    r.n++;
    const digits = data.price < 0.01 ? 8 : data.price < 10 ? 5 : 2;
    r.tr.innerHTML = `<td>${escapeHtml(channel)}</td><td>${data.price.toFixed(digits)}</td>` +
      `<td class="${change >= 0 ? 'up' : 'down'}">${change >= 0 ? '▲' : '▼'} ${Math.abs(change).toFixed(digits)}</td><td>${r.n}</td>`;
  });
}
$('pattern').addEventListener('change', () => show($('pattern').value));
const params = new URLSearchParams(location.search);
if (params.get('pattern')) $('pattern').value = params.get('pattern');
show($('pattern').value);

// The generator: a random walk per symbol, a few updates a second each.
$('generate').checked = params.get('generate') === '1';
const prices = { ...SYMBOLS };
setInterval(() => {
  if (!$('generate').checked || client.state !== 'connected') return;
  const chans = Object.keys(prices);
  const ch = chans[Math.floor(Math.random() * chans.length)];
  prices[ch] *= 1 + (Math.random() - 0.5) * 0.004;
  client.publish(ch, { price: prices[ch], t: Date.now() }).catch(() => {});
}, 40);
