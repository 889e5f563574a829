// Apps: members, rule, status and this node's request figures; create one.
'use strict';

Boat.start(async (content) => {
  const { el, fmt } = Boat;
  const list = el('div', { id: 'apps' });
  const members = (a) => a.members.map((m) => `${m.model} v${m.version}`).join(', ');
  const columns = [
    { label: 'Name', cell: (a) => el('a', { href: `/ui/apps/${encodeURIComponent(a.name)}` }, a.name) },
    { label: 'Members', cell: members },
    { label: 'Rule', cell: (a) => a.rule },
    { label: 'Status', cell: (a) => el('span', { class: a.status === 'running' ? 'ok' : 'warn' }, a.status) },
    { label: 'Token', cell: (a) => (a.requires_token ? 'required' : 'open') },
    { label: 'Revision', num: true, cell: (a) => a.revision },
    { label: 'Created', cell: (a) => fmt.time(a.created_at_ms) },
  ];
  async function refresh() {
    const { apps } = await Boat.request('GET', '/api/apps');
    list.textContent = '';
    list.append(Boat.table(columns, apps, { empty: 'No apps yet.' }));
  }

  const name = el('input', { name: 'name', required: true, pattern: '[A-Za-z0-9_.-]+', placeholder: 'iris-app' });
  const spec = el('input', { name: 'members', required: true, size: 36, placeholder: 'iris, iris_lr:2' });
  const rule = el('select', { name: 'rule' }, ['first', 'mean_probabilities', 'majority_vote', 'mean']
    .map((r) => el('option', { value: r }, r)));
  const token = el('input', { name: 'requires_token', type: 'checkbox' });
  const create = Boat.form({ id: 'create-app' },
    [Boat.field('Name', name), Boat.field('Members (model or model:version, comma separated)', spec),
      Boat.field('Ensemble rule', rule), Boat.field('Predictions need a token', token)],
    'Create app', async () => {
      const ms = spec.value.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
        const [model, version, extra] = s.split(':');
        if (extra !== undefined || (version !== undefined && !/^[0-9]+$/.test(version))) {
          throw new Error(`"${s}" is not a model or model:version (a whole number).`);
        }
        return version ? { model, version: Number(version) } : { model };
      });
      const a = await Boat.request('POST', '/api/apps',
        { json: { name: name.value, members: ms, rule: rule.value, requires_token: token.checked } });
      location.assign(`/ui/apps/${encodeURIComponent(a.name)}`);
    });
  const parts = [];
  if (Boat.can(['SUPERADMIN', 'ADMIN', 'APP_DEVELOPER'])) {
    parts.push(el('div', { class: 'card' }, el('h2', {}, 'Create an app'), create));
  } else {
    parts.push(el('p', { class: 'muted' }, 'Apps are managed by app developers and admins.'));
  }
  Boat.setContent(content, ...parts, list);
  await refresh();
});
