// A page that does not exist.
'use strict';

Boat.start(async (content) => {
  Boat.setContent(content, Boat.el('p', {}, 'There is no such page. ', Boat.el('a', { href: '/ui/' }, 'Back to the cluster.')));
}, { public: true });
