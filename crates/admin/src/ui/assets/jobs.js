// Train jobs: status and budget used; create a job.
'use strict';

Boat.start(async (content) => {
  const { el, fmt } = Boat;
  const list = el('div', { id: 'jobs' });
  const columns = [
    { label: 'Job', cell: (j) => el('a', { href: `/ui/jobs/${j.id}` }, `#${j.id}`) },
    { label: 'App', cell: (j) => j.app },
    { label: 'Status', cell: (j) => el('span', { class: j.status === 'completed' ? 'ok' : j.status === 'running' ? 'warn' : 'bad' }, j.status) },
    { label: 'Templates', cell: (j) => j.templates.join(', ') },
    { label: 'Advisor', cell: (j) => j.advisor },
    { label: 'Runtime', cell: (j) => j.runtime },
    { label: 'Trials', num: true, cell: (j) => `${j.trials_done} / ${j.budget.trials}` },
    { label: 'Time', num: true, cell: (j) => `${fmt.secs(j.elapsed_s)} / ${j.budget.minutes} min` },
    { label: 'Best', num: true, cell: (j) => (j.best ? `${fmt.num(j.best.score)} ${j.best.metric || ''}` : '-') },
    { label: 'Created', cell: (j) => fmt.time(j.created_at_ms) },
  ];
  async function refresh() {
    const { jobs } = await Boat.request('GET', '/api/jobs');
    list.textContent = '';
    list.append(Boat.table(columns, jobs.slice().reverse(), { empty: 'No train jobs yet.' }));
  }

  const parts = [];
  if (Boat.can(['SUPERADMIN', 'ADMIN', 'APP_DEVELOPER'])) {
    const [{ datasets }, { templates }] = await Promise.all([
      Boat.request('GET', '/api/datasets'), Boat.request('GET', '/api/templates')]);
    const options = (items) => items.map((d) => el('option', { value: d.name }, `${d.name} (${d.task})`));
    const app = el('input', { name: 'app', required: true, pattern: '[A-Za-z0-9_.-]+', placeholder: 'iris-app' });
    const task = el('select', { name: 'task' }, el('option', { value: 'classification' }, 'classification'),
      el('option', { value: 'regression' }, 'regression'));
    const train = el('select', { name: 'train_dataset', required: true }, options(datasets));
    const val = el('select', { name: 'validation_dataset' }, el('option', { value: '' }, '(split the training set)'), options(datasets));
    const boxes = templates.map((t) => el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'template', value: t.name, 'data-task': t.task }), `${t.name} (${t.task})`));
    const trials = el('input', { name: 'trials', type: 'number', min: 1, value: 10, style: 'width:5rem' });
    const workers = el('input', { name: 'workers', type: 'number', min: 1, value: 1, style: 'width:4rem' });
    const minutes = el('input', { name: 'minutes', type: 'number', min: 0.1, step: 'any', value: 10, style: 'width:5rem' });
    const advisor = el('select', { name: 'advisor' }, el('option', { value: 'tpe' }, 'tpe'), el('option', { value: 'random' }, 'random'));
    const deploy = el('input', { name: 'deploy_best', placeholder: 'app to update at the end' });
    const create = Boat.form({ id: 'create-job' }, [
      Boat.field('App', app), Boat.field('Task', task), Boat.field('Training dataset', train),
      Boat.field('Validation dataset', val), el('fieldset', {}, el('legend', {}, 'Templates'), boxes),
      Boat.field('Trials', trials), Boat.field('Workers', workers), Boat.field('Minutes', minutes),
      Boat.field('Advisor', advisor), Boat.field('Deploy best to', deploy),
    ], 'Start job', async (f) => {
      const chosen = [...f.querySelectorAll('input[name=template]:checked')].map((b) => b.value);
      if (!chosen.length) throw new Error('Choose at least one template.');
      const body = {
        app: app.value, task: task.value, train_dataset: train.value, templates: chosen, advisor: advisor.value,
        budget: { trials: Number(trials.value), workers: Number(workers.value), minutes: Number(minutes.value) },
      };
      if (val.value) body.validation_dataset = val.value;
      if (deploy.value) body.deploy_best = deploy.value;
      const job = await Boat.request('POST', '/api/jobs', { json: body });
      location.assign(`/ui/jobs/${job.id}`);
    });
    parts.push(el('div', { class: 'card' }, el('h2', {}, 'Start a train job'), create));
  } else {
    parts.push(el('p', { class: 'muted' }, 'Train jobs are run by app developers and admins.'));
  }
  Boat.setContent(content, ...parts, list);
  await Boat.every(3000, refresh).first;
});
