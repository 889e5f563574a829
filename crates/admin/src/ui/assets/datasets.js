// Datasets: columns, rows and class counts; upload a CSV.
'use strict';

Boat.start(async (content) => {
  const { el, fmt } = Boat;
  const list = el('div', { id: 'datasets' });
  const columns = [
    { label: 'Name', cell: (d) => el('strong', {}, d.name) },
    { label: 'Task', cell: (d) => d.task },
    { label: 'Rows', num: true, cell: (d) => d.rows },
    { label: 'Columns', cell: (d) => el('span', { title: d.columns.map((c) => `${c.name} (${c.kind})`).join(', ') },
      `${d.columns.length}: ${d.columns.slice(0, 6).map((c) => c.name).join(', ')}${d.columns.length > 6 ? ', …' : ''}`) },
    { label: 'Target', cell: (d) => el('code', {}, d.target) },
    { label: 'Classes', cell: (d) => Object.entries(d.class_counts || {}).map(([k, v]) => `${k}: ${v}`).join(', ') || '-' },
    { label: 'Size', num: true, cell: (d) => fmt.bytes(d.size_bytes) },
    { label: 'Uploaded', cell: (d) => fmt.time(d.uploaded_at_ms) },
  ];
  async function refresh() {
    const { datasets } = await Boat.request('GET', '/api/datasets');
    list.textContent = '';
    list.append(Boat.table(columns, datasets, { empty: 'No datasets yet.' }));
  }

  const name = el('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_.-]+', placeholder: 'iris_train' });
  const task = el('select', { name: 'task' }, el('option', { value: 'classification' }, 'classification'),
    el('option', { value: 'regression' }, 'regression'));
  const target = el('input', { name: 'target', placeholder: 'last column' });
  const file = el('input', { name: 'file', type: 'file', accept: '.csv,text/csv', required: true });
  const bar = el('progress', { max: 1, value: 0, hidden: true });
  const upload = Boat.form({ id: 'upload' },
    [Boat.field('Name', name), Boat.field('Task', task), Boat.field('Target column', target), Boat.field('CSV file', file), bar],
    'Upload', async () => {
      const { bytes } = await Boat.fileBytes(file);
      const q = new URLSearchParams({ task: task.value });
      if (target.value) q.set('target', target.value);
      bar.hidden = false;
      let d;
      try {
        d = await Boat.request('POST', `/api/datasets/${encodeURIComponent(name.value)}?${q}`, {
          body: bytes, type: 'text/csv', progress: (sent, total) => { bar.value = total ? sent / total : 0; },
        });
      } finally {
        bar.hidden = true;
      }
      Boat.info(`Uploaded ${d.name}: ${d.rows} rows.`);
      await refresh();
    });
  const writer = Boat.can(['SUPERADMIN', 'ADMIN', 'APP_DEVELOPER']);
  Boat.setContent(content, writer ? el('div', { class: 'card' }, el('h2', {}, 'Upload a CSV dataset'), upload)
    : el('p', { class: 'muted' }, 'Datasets are managed by app developers and admins.'), list);
  await refresh();
});
