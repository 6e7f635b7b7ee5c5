// scoreboard.js - score updates {team: 'home'|'away', points, seq?} on
// scores:final. The board replays the whole history on load, then follows
// live with recovery: after any drop the SDK resubscribes from the last
// offset and the missed updates arrive in order, exactly once.
import { $, pageClient } from './common.js';

const CHANNEL = 'scores:final';
const client = pageClient();
const score = { home: 0, away: 0 };
const seen = [];
window.__scoreboard = { score, seen, recoveries: 0, failures: 0 };

function apply(offset, u) {
  if (!u || (u.team !== 'home' && u.team !== 'away')) return;
  score[u.team] += Number(u.points) || 0;
  seen.push(u.seq !== undefined ? u.seq : offset);
  $('home').textContent = score.home;
  $('away').textContent = score.away;
  $('updates').textContent = seen.length;
  const li = document.createElement('li');
  li.textContent = `#${offset} ${u.team} +${u.points}`;
  $('log').prepend(li);
  while ($('log').children.length > 30) $('log').lastChild.remove();
}

// The whole game first (history), then live from that position with recovery.
client.on('connected', async function once() {
  client.off('connected', once);
  const h = await client.history(CHANNEL);
  for (const p of h.publications) apply(p.offset, p.data);
  const sub = client.subscribe(CHANNEL, { recover: true, since: { epoch: h.epoch, offset: h.offset } });
  sub.on('publication', ({ offset, data }) => apply(offset, data));
  sub.on('recovered', ({ publications }) => {
    window.__scoreboard.recoveries++;
    $('recovery').textContent = `recovered ${publications} missed update(s) after a drop`;
  });
  sub.on('recovery_failed', () => {
    window.__scoreboard.failures++;
    $('recovery').textContent = 'history lost on the server: reload the page';
  });
});

for (const b of document.querySelectorAll('button[data-team]')) {
  b.addEventListener('click', () => {
    client.publish(CHANNEL, { team: b.dataset.team, points: Number(b.dataset.points) }).catch((e) => alert(e.message));
  });
}
