// Models: every version with its size, checksum, upload time and signature;
// upload with progress, set the default, delete a version.
'use strict';

Boat.start(async (content) => {
  const { el, fmt } = Boat;
  const writer = Boat.can(['SUPERADMIN', 'ADMIN', 'MODEL_DEVELOPER']);
  const list = el('div', { id: 'models' });
  const sig = (ios) => (ios || []).map((t) => `${t.name}: ${t.datatype || t.kind || '?'} [${(t.shape || []).join(', ')}]`).join('; ');

  async function refresh() {
    const { models } = await Boat.request('GET', '/api/models');
    list.textContent = '';
    if (!models.length) list.append(el('p', { class: 'muted' }, 'No models yet.'));
    for (const m of models) {
      const columns = [
        { label: 'Version', num: true, cell: (v) => v.version },
        { label: 'Default', cell: (v) => (v.default ? el('span', { class: 'badge ok' }, 'default') : '') },
        { label: 'Size', num: true, cell: (v) => fmt.bytes(v.size_bytes) },
        { label: 'SHA-256', cell: (v) => el('code', { title: v.sha256 }, (v.sha256 || '').slice(0, 16)) },
        { label: 'Uploaded', cell: (v) => (v.builtin ? 'built in' : fmt.time(v.uploaded_at_ms)) },
        { label: 'Inputs', cell: (v) => el('code', {}, sig(v.inputs)) },
        { label: 'Outputs', cell: (v) => el('code', {}, sig(v.outputs)) },
      ];
      if (writer) {
        columns.push({ label: '', cell: (v) => el('span', {},
          v.default ? null : el('button', { class: 'plain', type: 'button', 'data-action': 'default',
            onclick: () => act(() => Boat.request('POST', `/api/models/${encodeURIComponent(m.name)}/default`,
              { json: { version: v.version } }), `${m.name} v${v.version} is now the default.`) }, 'Make default'),
          ' ',
          v.default ? null : el('button', { class: 'danger', type: 'button', 'data-action': 'delete',
            onclick: () => confirm(`Delete ${m.name} version ${v.version}?`) &&
              act(() => Boat.request('DELETE', `/api/models/${encodeURIComponent(m.name)}/versions/${v.version}`),
                `${m.name} v${v.version} deleted.`) }, 'Delete')) });
      }
      list.append(el('section', { class: 'card model', 'data-model': m.name },
        el('h2', {}, m.name, ' ', el('span', { class: 'muted' }, `default v${m.default_version ?? '-'}`)),
        Boat.table(columns, m.versions)));
    }
  }
  async function act(call, done) {
    Boat.clear();
    try { await call(); Boat.info(done); } catch (e) { Boat.show(e); }
    await refresh();
  }

  const parts = [];
  if (writer) {
    const name = el('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_.-]+', placeholder: 'iris' });
    const file = el('input', { name: 'file', type: 'file', accept: '.onnx', required: true });
    const bar = el('progress', { max: 1, value: 0, hidden: true });
    const upload = Boat.form({ id: 'upload' }, [Boat.field('Name', name), Boat.field('ONNX file', file), bar],
      'Upload', async () => {
        const { bytes } = await Boat.fileBytes(file);
        bar.hidden = false;
        bar.value = 0;
        let r;
        try {
          r = await Boat.request('POST', `/api/models/${encodeURIComponent(name.value)}`, {
            body: bytes, type: 'application/octet-stream',
            progress: (sent, total) => { bar.value = total ? sent / total : 0; },
          });
        } finally {
          bar.hidden = true;
        }
        Boat.info(`Uploaded ${r.name || name.value} version ${r.version}.`);
        await refresh();
      });
    parts.push(el('div', { class: 'card' }, el('h2', {}, 'Upload a version'), upload));
  } else {
    parts.push(el('p', { class: 'muted' }, 'Uploading, setting defaults and deleting need the MODEL_DEVELOPER role or an admin.'));
  }
  Boat.setContent(content, ...parts, list);
  await refresh();
});
