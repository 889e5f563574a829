// One app: members and rule, request rate and p50/p99 latency over the last
// ten minutes (as the leader measured them), and a form to predict.
'use strict';

Boat.start(async (content, name) => {
  const { el, fmt } = Boat;
  const path = `/api/apps/${encodeURIComponent(name)}`;
  const facts = el('dl', { class: 'kv', id: 'facts' });
  const rate = el('div', { id: 'rate-chart' });
  const latency = el('div', { id: 'latency-chart' });
  const measured = el('p', { class: 'muted' });
  const input = el('textarea', { name: 'input', rows: 4, cols: 60, id: 'predict-input' }, '[[5.1, 3.5, 1.4, 0.2]]');
  const answer = el('pre', { class: 'answer', id: 'answer', hidden: true });
  const predict = Boat.form({ id: 'predict' }, [Boat.field('Input (JSON, as the members take it)', input)], 'Predict',
    async () => {
      let value;
      try { value = JSON.parse(input.value); } catch (e) { throw new Error('The input is not valid JSON: ' + e.message); }
      const r = await Boat.request('POST', `/apps/${encodeURIComponent(name)}/predict`, { json: { input: value } });
      answer.hidden = false;
      answer.textContent = JSON.stringify(r, null, 2);
    });
  Boat.setContent(content,
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h2', {}, 'App'), facts),
      el('div', { class: 'card' }, el('h2', {}, 'Predict'), predict, answer)),
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h2', {}, 'Requests per second'), rate),
      el('div', { class: 'card' }, el('h2', {}, 'Latency (ms)'), latency)),
    measured);

  const kv = (pairs) => pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]);
  await Boat.every(5000, async () => {
    // The leader runs every prediction, so its figures are the app's.
    let a;
    let from = 'the leader';
    try {
      a = await Boat.request('GET', `${path}?stats=leader`);
    } catch (e) {
      if (e.status !== 503) throw e;
      // No leader right now: this node's own view, and say so.
      a = await Boat.request('GET', path);
      from = 'this node; no leader is known';
    }
    facts.textContent = '';
    facts.append(...kv([
      ['Members', a.members.map((m) => `${m.model} v${m.version}`).join(', ')],
      ['Rule', a.rule],
      ['Status', a.status],
      ['Predictions need a token', a.requires_token ? 'yes' : 'no'],
      ['Requests (errors)', `${a.stats.requests} (${a.stats.errors})`],
      ['p50 / p99', `${fmt.num(a.stats.p50_ms, 2)} / ${fmt.num(a.stats.p99_ms, 2)} ms`],
      ['Revision', a.revision],
    ]));
    const series = a.stats.series || [];
    const per = a.stats.bucket_s || 10;
    const xOpts = { xFormat: (t) => fmt.clock(t), xLabel: 'time', xTicks: (lo, hi) => Boat.ticks(lo, hi, 5) };
    rate.textContent = '';
    rate.append(Boat.chart([{ name: 'requests/s', points: series.map((p) => [p.t_ms, p.requests / per]) }],
      Object.assign({ yMin: 0, empty: 'No requests yet.' }, xOpts)));
    latency.textContent = '';
    latency.append(Boat.chart([
      { name: 'p50', points: series.filter((p) => p.p50_ms !== null).map((p) => [p.t_ms, p.p50_ms]) },
      { name: 'p99', points: series.filter((p) => p.p99_ms !== null).map((p) => [p.t_ms, p.p99_ms]) },
    ], Object.assign({ yMin: 0, empty: 'No requests yet.' }, xOpts)));
    measured.textContent = `Measured by node ${a.stats.node_id} (${from}), in ${per}-second buckets; refreshed ${fmt.clock(Date.now())}.`;
  }).first;
});
