// The cluster: every member's role, term, indexes, lag, digest and health,
// asked by this node every two seconds, and the verdict of `boat status`.
'use strict';

Boat.start(async (content) => {
  const { el, fmt } = Boat;
  const verdict = el('p', { class: 'verdict', id: 'verdict' });
  const holder = el('div', { id: 'nodes' });
  const served = el('p', { class: 'muted', id: 'served' });
  Boat.setContent(content, verdict, holder, served);

  const health = (n) => {
    if (!n.status) return el('span', { class: 'bad' }, 'unreachable: ' + (n.error || ''));
    if (n.status.divergence) return el('span', { class: 'bad' }, 'diverged');
    if (n.lag > 1000) return el('span', { class: 'warn' }, 'behind');
    return el('span', { class: 'ok' }, 'ok');
  };
  const s = (n, f) => (n.status ? f(n.status) : '-');
  const columns = [
    { label: 'Node', cell: (n) => el('a', { href: `http://${n.http_addr}/ui/` }, `${n.id}`) },
    { label: 'Address', cell: (n) => el('code', {}, n.http_addr) },
    { label: 'Member', cell: (n) => n.role },
    { label: 'Raft role', cell: (n) => s(n, (st) => (st.is_leader ? el('span', { class: 'badge ok' }, 'leader') : st.state)) },
    { label: 'Term', num: true, cell: (n) => s(n, (st) => st.term) },
    { label: 'Commit', num: true, cell: (n) => s(n, (st) => st.commit_index) },
    { label: 'Applied', num: true, cell: (n) => s(n, (st) => st.last_applied) },
    { label: 'Lag', num: true, cell: (n) => (n.lag === null || n.lag === undefined ? '-' : n.lag) },
    { label: 'State digest', cell: (n) => s(n, (st) => el('code', { title: st.state_digest }, st.state_digest.slice(0, 16))) },
    { label: 'Predictions', num: true, cell: (n) => s(n, (st) => st.predictions_run) },
    { label: 'Health', cell: health },
  ];

  await Boat.every(2000, async () => {
    const c = await Boat.request('GET', '/api/cluster/status');
    Boat.clear();
    verdict.className = 'verdict ' + (c.verdict === 'healthy' ? 'ok' : c.verdict === 'degraded' ? 'warn' : 'bad');
    verdict.textContent = c.reason ? `${c.verdict}: ${c.reason}` : c.verdict;
    holder.textContent = '';
    holder.append(Boat.table(columns, c.nodes, {
      rowClass: (n) => (n.status && n.status.is_leader ? 'leader' : null),
    }));
    served.textContent = `Served by node ${c.answered_by}; refreshed ${fmt.clock(Date.now())}.`;
  }).first;
});
