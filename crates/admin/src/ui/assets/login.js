// Sign in: POST /api/tokens, then back to the page that sent us here.
'use strict';

Boat.start(async (content) => {
  const { el } = Boat;
  const email = el('input', { name: 'email', required: true, autocomplete: 'username', size: 28 });
  const password = el('input', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const next = new URLSearchParams(location.search).get('next');
  const target = next && next.startsWith('/ui/') && !next.startsWith('/ui/login') ? next : '/ui/';
  const f = Boat.form({ id: 'login' }, [Boat.field('Email', email), Boat.field('Password', password)], 'Sign in',
    async () => {
      const login = await Boat.request('POST', '/api/tokens',
        { json: { email: email.value, password: password.value }, keepSession: true });
      Boat.signIn(login);
      location.assign(target);
    });
  Boat.setContent(content,
    el('div', { class: 'card' }, f),
    el('p', { class: 'muted' }, 'Use an account made with boat users create, or the bootstrap superadmin.'));
  email.focus();
}, { public: true });
