// The app opens with no network: the app shell (this version's files) is cached at install;
// online, the shell comes from the network (so a new build shows at once) and refreshes the
// cache; offline, from the cache. Nothing else is cached: CouchDB and bridge traffic (/couch, /bridge)
// always goes to the network, so no patient data and no credential reaches Cache Storage.
const VERSION = '__VERSION__';
const SHELL = ['./', 'index.html', 'app.js', 'style.css', 'manifest.webmanifest'];
const CACHE = `carecouch-shell-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(
    keys.filter((k) => k.startsWith('carecouch-shell-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin ||
      url.pathname.startsWith('/couch/') || url.pathname.startsWith('/bridge/')) {
    return;  // the network, untouched
  }
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    try {
      const fresh = await fetch(event.request);
      if (fresh.ok) { await cache.put(event.request, fresh.clone()); }
      return fresh;
    } catch (err) {
      const hit = await cache.match(event.request, {ignoreSearch: true});
      if (hit) { return hit; }
      throw err;
    }
  }));
});
