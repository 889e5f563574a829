// One train job: its budget, the trials table, a chart of score by trial
// with the best so far, and the selected trial's per-epoch metrics, all
// refreshed while the job runs. Stop the job; deploy its best trial.
'use strict';

Boat.start(async (content, arg) => {
  const id = encodeURIComponent(arg);
  const { el, fmt } = Boat;
  const facts = el('dl', { class: 'kv', id: 'facts' });
  const trialsBox = el('div', { id: 'trials' });
  const scoreBox = el('div', { id: 'score-chart' });
  const metricsBox = el('div', { id: 'metrics-chart' });
  const metricsTitle = el('h2', {}, 'Per-epoch metrics');
  const actions = el('div', { class: 'card', id: 'actions' });
  let selected = null;
  let pinned = false;
  const logs = new Map(); // trial id -> {next, entries}

  Boat.setContent(content,
    el('div', { class: 'grid' }, el('div', { class: 'card' }, el('h2', {}, 'Job'), facts), actions),
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h2', {}, 'Score by trial'), scoreBox),
      el('div', { class: 'card' }, metricsTitle, metricsBox)),
    el('h2', {}, 'Trials'), trialsBox);

  const writer = Boat.can(['SUPERADMIN', 'ADMIN', 'APP_DEVELOPER']);
  const stop = el('button', { class: 'danger', type: 'button', id: 'stop', onclick: async () => {
    if (!confirm(`Stop job ${id}? Running trials are stopped.`)) return;
    Boat.clear();
    try { await Boat.request('POST', `/api/jobs/${id}/stop`); Boat.info(`Job ${id} is stopping.`); } catch (e) { Boat.show(e); }
  } }, 'Stop job');
  const target = el('input', { name: 'app', required: true, pattern: '[A-Za-z0-9_.-]+', placeholder: 'app name' });
  const deploy = Boat.form({ id: 'deploy' }, [Boat.field('Deploy the best trial to app', target)], 'Deploy', async () => {
    const { trials } = await Boat.request('GET', `/api/jobs/${id}/best?n=1`);
    const best = trials[0];
    if (!best || !best.model) throw new Error('No trial has produced a model yet.');
    const [model, version] = best.model.split(':');
    const members = [{ model, version: Number(version) }];
    const path = `/api/apps/${encodeURIComponent(target.value)}`;
    let exists = true;
    try { await Boat.request('GET', path); } catch (e) { if (e.status === 404) exists = false; else throw e; }
    if (exists) await Boat.request('PUT', `${path}/members`, { json: { members } });
    else await Boat.request('POST', '/api/apps', { json: { name: target.value, members } });
    Boat.info(`App ${target.value} now serves ${best.model} (trial ${best.id}, ${best.metric} ${fmt.num(best.score)}).`);
  });
  if (writer) actions.append(el('h2', {}, 'Actions'), stop, el('p'), deploy);
  else actions.append(el('p', { class: 'muted' }, 'Stopping and deploying need the APP_DEVELOPER role or an admin.'));

  const kv = (pairs) => pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]);
  const columns = [
    { label: 'Trial', cell: (t) => el('code', {}, t.id) },
    { label: 'Template', cell: (t) => t.template },
    { label: 'Knobs', cell: (t) => el('code', {}, fmt.knobs(t.knobs)) },
    { label: 'Status', cell: (t) => el('span', { class: t.status === 'completed' ? 'ok' : t.status === 'errored' ? 'bad' : 'warn',
      title: t.reason || '' }, t.status) },
    { label: 'Score', num: true, cell: (t) => fmt.num(t.score) },
    { label: 'Epochs', num: true, cell: (t) => t.epochs ?? '-' },
    { label: 'Duration', num: true, cell: (t) => fmt.secs(t.duration_s) },
    { label: 'Worker', cell: (t) => (t.worker ? el('code', { title: t.worker }, t.worker.slice(0, 24)) : '-') },
    { label: 'Model', cell: (t) => t.model || '-' },
  ];

  // One read of a trial's log at a time: a click and a poll share it.
  async function metrics(trial) {
    const have = logs.get(trial.id) || { next: 0, entries: [], reading: null };
    logs.set(trial.id, have);
    if (!have.reading) {
      have.reading = Boat.request('GET', `/api/trials/${encodeURIComponent(trial.id)}/logs?since=${have.next}`)
        .then((r) => { have.entries.push(...r.entries); have.next = r.next; })
        .finally(() => { have.reading = null; });
    }
    await have.reading;
    // Only the selected trial is drawn (another may have been clicked meanwhile).
    if (!selected || selected.id !== trial.id) return;
    const last = Math.max(0, ...have.entries.map((e) => e.attempt));
    const rows = have.entries.filter((e) => e.kind === 'metrics' && e.attempt === last);
    const names = [...new Set(rows.flatMap((e) => Object.keys(e.values)))];
    const loss = names.filter((n) => /loss/.test(n));
    const other = names.filter((n) => !/loss/.test(n));
    const series = (ns) => ns.map((n) => ({ name: n, points: rows.filter((e) => n in e.values).map((e) => [e.epoch, e.values[n]]) }));
    metricsTitle.textContent = `Per-epoch metrics of trial ${trial.id} (${trial.status})`;
    metricsBox.textContent = '';
    metricsBox.append(
      Boat.chart(series(other), { xLabel: 'epoch', yLabel: other.join(', '), empty: 'No metrics logged yet.', height: 200 }),
      Boat.chart(series(loss), { xLabel: 'epoch', yLabel: 'loss', empty: 'No loss logged yet.', height: 200 }));
  }

  const stopPolling = Boat.every(2000, async () => {
    const [job, { trials }] = await Promise.all([
      Boat.request('GET', `/api/jobs/${id}`), Boat.request('GET', `/api/jobs/${id}/trials`)]);
    document.getElementById('title').textContent = `Train job #${job.id}: ${job.app}`;
    facts.textContent = '';
    const left = Math.max(0, job.budget.minutes * 60 - job.elapsed_s);
    facts.append(...kv([
      ['Status', el('span', { id: 'job-status' }, job.status + (job.reason ? ` (${job.reason})` : ''))],
      ['Trials', `${job.trials_done} done of ${job.budget.trials} (${job.trials_completed} completed, ${job.trials_errored} errored), ${job.trials_running} running`],
      ['Time', `${fmt.secs(job.elapsed_s)} used, ${job.status === 'running' ? fmt.secs(left) + ' left' : 'ended'} (budget ${job.budget.minutes} min)`],
      ['Workers', `${job.budget.workers} on ${job.runtime}`],
      ['Best', job.best ? `${fmt.num(job.best.score)} ${job.best.metric || ''} (trial ${job.best.id})` : '-'],
      ['Data', `${job.train_dataset} / ${job.validation_dataset || 'split'}`],
      ['Templates', job.templates.join(', ')],
      ['Advisor', job.advisor],
      ['Deploys to', job.deployed_to || job.deploy_best || '-'],
    ]));
    stop.disabled = job.status !== 'running';

    const done = trials.filter((t) => t.score !== null && t.score !== undefined).sort((a, b) => a.no - b.no);
    let best = -Infinity;
    const bestLine = done.map((t) => { best = Math.max(best, t.score); return [t.no, best]; });
    scoreBox.textContent = '';
    scoreBox.append(Boat.chart([
      { name: 'trial score', kind: 'dots', points: done.map((t) => [t.no, t.score]) },
      { name: 'best so far', points: bestLine },
    ], { xInteger: true, xLabel: 'trial', yLabel: done[0] ? done[0].metric : 'score', empty: 'No trial has finished yet.' }));

    if (!pinned) {
      selected = trials.find((t) => t.status === 'running') || (job.best && trials.find((t) => t.id === job.best.id)) ||
        trials[trials.length - 1] || null;
    }
    trialsBox.textContent = '';
    trialsBox.append(Boat.table(columns, trials, {
      empty: 'No trials yet.',
      rowClass: (t) => (selected && t.id === selected.id ? 'selected' : null),
      onClick: (t) => { selected = t; pinned = true; metrics(t).catch(Boat.show); },
    }));
    if (selected) {
      selected = trials.find((t) => t.id === selected.id) || selected;
      await metrics(selected);
    }
    if (job.status !== 'running' && job.trials_running === 0) stopPolling();
  });
  await stopPolling.first;
});
