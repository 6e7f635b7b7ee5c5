// echo.js - the demo page's WebSocket echo client (no library needed).
const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/echo`;
let ws;
let sent = 0, received = 0, burstStart = 0;

function log(text) {
  const li = document.createElement('li');
  li.textContent = text;
  $('log').prepend(li);
  while ($('log').children.length > 50) $('log').lastChild.remove();
}

function setState(text, cls) {
  $('state').textContent = text;
  $('state').className = `state ${cls}`;
}

function connect() {
  if (ws) ws.close();
  setState('connecting…', '');
  ws = new WebSocket(wsUrl);
  ws.onopen = () => {
    setState('connected', 'open');
    $('ext').textContent = ws.extensions ? ws.extensions : 'no extension';
  };
  ws.onmessage = (ev) => {
    received++;
    if (burstStart && received === sent) {
      log(`1,000 round trips in ${(performance.now() - burstStart).toFixed(1)} ms`);
      burstStart = 0;
    } else if (!burstStart) {
      log(`← ${ev.data}`);
    }
    $('stats').textContent = `${sent} sent, ${received} echoed`;
  };
  ws.onclose = (ev) => setState(`closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`, 'closed');
}

$('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (ws.readyState !== WebSocket.OPEN) return;
  ws.send($('text').value);
  sent++;
  log(`→ ${$('text').value}`);
});
$('burst').addEventListener('click', () => {
  if (ws.readyState !== WebSocket.OPEN) return;
  burstStart = performance.now();
  for (let i = 0; i < 1000; i++) { ws.send(`burst ${i}`); sent++; }
});
$('reconnect').addEventListener('click', connect);
fetch('/health').then((r) => r.json()).then((j) => { $('health').textContent = j.status; })
  .catch(() => { $('health').textContent = 'unreachable'; });
connect();
