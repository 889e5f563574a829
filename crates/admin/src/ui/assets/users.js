// Users (admins only): create one, ban and unban.
'use strict';

Boat.start(async (content) => {
  const { el, fmt } = Boat;
  const list = el('div', { id: 'users' });
  const me = Boat.me();
  async function act(call, done) {
    Boat.clear();
    try { await call(); Boat.info(done); } catch (e) { Boat.show(e); }
    await refresh();
  }
  const columns = [
    { label: 'Id', num: true, cell: (u) => u.id },
    { label: 'Email', cell: (u) => u.email },
    { label: 'Role', cell: (u) => u.role },
    { label: 'Status', cell: (u) => (u.banned ? el('span', { class: 'bad' }, 'banned') : el('span', { class: 'ok' }, 'active')) },
    { label: 'Created', cell: (u) => fmt.time(u.created_at_ms) },
    { label: '', cell: (u) => (me && u.id === me.id ? el('span', { class: 'muted' }, 'you') : u.banned
      ? el('button', { class: 'plain', type: 'button', 'data-action': 'unban',
        onclick: () => act(() => Boat.request('POST', `/api/users/${u.id}/unban`), `${u.email} may sign in again.`) }, 'Unban')
      : el('button', { class: 'danger', type: 'button', 'data-action': 'ban',
        onclick: () => act(() => Boat.request('POST', `/api/users/${u.id}/ban`), `${u.email} is banned.`) }, 'Ban')) },
  ];
  async function refresh() {
    const { users } = await Boat.request('GET', '/api/users');
    list.textContent = '';
    list.append(Boat.table(columns, users));
  }
  const email = el('input', { name: 'email', type: 'email', required: true, size: 26 });
  const password = el('input', { name: 'password', type: 'password', required: true, minlength: 8 });
  const role = el('select', { name: 'role' },
    ['APP_USER', 'APP_DEVELOPER', 'MODEL_DEVELOPER', 'ADMIN'].map((r) => el('option', { value: r }, r)));
  const create = Boat.form({ id: 'create-user' },
    [Boat.field('Email', email), Boat.field('Password', password), Boat.field('Role', role)], 'Create user', async () => {
      const u = await Boat.request('POST', '/api/users', { json: { email: email.value, password: password.value, role: role.value } });
      Boat.info(`Created ${u.email} (${u.role}).`);
      email.value = '';
      password.value = '';
      await refresh();
    });
  Boat.setContent(content, el('div', { class: 'card' }, el('h2', {}, 'Create a user'), create), list);
  await refresh();
});
