// The header every page has: links, and the account (sign in / sign out).
import { api, me } from './api.js';
import { h, $ } from './ui.js';

export async function nav(current) {
  const header = h('header', { class: 'bar' },
    h('a', { href: '/', class: 'brand' }, 'vshare'),
    h('nav', {},
      h('a', { href: '/studio', 'aria-current': current === 'studio' ? 'page' : null }, 'Studio'),
      h('a', { href: '/library', 'aria-current': current === 'library' ? 'page' : null }, 'Library'),
      h('span', { id: 'account' })));
  document.body.prepend(header);
  let user = null;
  try {
    user = await me();
  } catch {
    user = null;
  }
  const account = $('#account');
  if (user) {
    account.append(h('a', {
      href: '/signin',
      title: `Signed in as ${user.user?.username ?? ''}`,
      onclick: async (e) => {
        e.preventDefault();
        await api('DELETE', '/api/v1/session').catch(() => {});
        location.assign('/');
      },
    }, 'Sign out'));
  } else {
    account.append(h('a', { href: '/signin', 'aria-current': current === 'signin' ? 'page' : null }, 'Sign in'));
  }
  return user;
}
