// metrics.js - a live chart of channel metrics.demo, redrawn on every animation
// frame from a ring of the last samples. Samples: {t: ms, cpu: 0-100, rps: n}.
import { $, pageClient } from './common.js';

const CHANNEL = 'metrics.demo';
const KEEP = 300; // samples on screen (15 s at 20/s)
const client = pageClient();
const sub = client.subscribe(CHANNEL, { recover: false }); // live data: old samples are useless
const samples = [];
let count = 0;
const arrivals = [];
window.__metrics = { get count() { return count; } };

sub.on('publication', ({ data }) => {
  samples.push(data);
  if (samples.length > KEEP) samples.shift();
  count++;
  arrivals.push(performance.now());
});

// The generator: a random walk, published 20 times a second through the SDK.
const params = new URLSearchParams(location.search);
$('generate').checked = params.get('generate') === '1';
let cpu = 35, rps = 1200;
setInterval(() => {
  if (!$('generate').checked || client.state !== 'connected') return;
  cpu = Math.min(100, Math.max(0, cpu + (Math.random() - 0.5) * 8));
  rps = Math.max(0, rps + (Math.random() - 0.5) * 150);
  client.publish(CHANNEL, { t: Date.now(), cpu: Math.round(cpu * 10) / 10, rps: Math.round(rps) }).catch(() => {});
}, 50);

const canvas = $('chart');
const ctx = canvas.getContext('2d');
function line(key, max, color) {
  const w = canvas.width, h = canvas.height;
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  samples.forEach((s, i) => {
    const x = (i / (KEEP - 1)) * w;
    const y = h - 10 - (Math.min(s[key], max) / max) * (h - 30);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}
function draw() {
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = '#24304a';
  ctx.lineWidth = 1;
  for (let y = 20; y < h; y += 40) { ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke(); }
  const maxRps = Math.max(2000, ...samples.map((s) => s.rps));
  line('cpu', 100, '#4fd1c5');
  line('rps', maxRps, '#f6ad55');
  ctx.fillStyle = '#cbd5e0';
  ctx.font = '13px ui-monospace, monospace';
  const s = samples[samples.length - 1];
  ctx.fillText(s ? `cpu ${s.cpu}%` : 'waiting for samples…', 10, 18);
  ctx.fillStyle = '#f6ad55';
  if (s) ctx.fillText(`${s.rps} req/s`, 130, 18);
  const now = performance.now();
  while (arrivals.length && now - arrivals[0] > 1000) arrivals.shift();
  $('rate').textContent = arrivals.length;
  $('count').textContent = count;
  $('last').textContent = s ? new Date(s.t).toLocaleTimeString() : '–';
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);
