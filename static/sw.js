// The page's service worker: the page opens with no network, from the files of its own build.
//
// The page server (stack/serve.py) and `make dist` (stack/build.py) send this file as /sw.js
// with the lines between the build markers replaced: the build's VERSION (a hash of its files)
// and the URLs of the MicroPython page's files (stack/offline.py). A new deploy changes
// VERSION, so the browser installs the new worker, which fills a cache of its own and deletes
// the old one.
//
// - Stamped files (*.mpy?v=<hash>, static/runtime/**) are cache-first: a URL names one content.
// - index.html (any navigation), config.json and the other files are network-first, with the
//   build's copy as the fallback. A navigation is never stored: its address may hold a token.
// - config.json is stored without its "token" (the page server's holds the local stack's).
// - A page whose index.html from the network differs from this build's (a deploy this worker
//   does not know yet) gets everything from the network first, so it never runs on the runtime
//   files of an older build.
// - Requests to other origins (Directus) are not touched.

/* build:start */
const VERSION = "unbuilt";
const PRECACHE = [];
/* build:end */

const PREFIX = "directus-realtime-";
const CACHE = PREFIX + VERSION;
const INDEX = new URL("./", self.location).href;
const CONFIG = new URL("./config.json", self.location).href;
const RUNTIME = new URL("./static/runtime/", self.location).href;
// Per page (its client id): a Promise of whether it runs a build newer than this one. The
// navigation is answered as soon as its headers are in; the comparison of its body with this
// build's index.html goes on beside, and only the page's stamped files wait for it.
const newerPages = new Map();

self.addEventListener("install", (event) => {
  // The page's bytecode (*.mpy?v=<hash>) is read from this build's cache by the browser itself,
  // without starting this worker's script for each file (the Static Routing API, where the
  // browser has it; a file not in the cache comes from the network). A warm load asks for about
  // twenty of them at once, and each fetch event cost the page about a millisecond.
  if (event.addRoutes) {
    event.addRoutes({
      condition: { urlPattern: { pathname: "*.mpy", search: "v=*" } },
      source: { cacheName: CACHE },
    }).catch(() => {}); // (the fetch handler below serves them then)
  }
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names.filter((n) => n.startsWith(PREFIX) && n !== CACHE).map((n) => caches.delete(n)),
        ),
      )
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(page(event));
  } else if (url.href === CONFIG) {
    event.respondWith(config(request));
  } else if (stamped(url)) {
    event.respondWith(stampedFile(event));
  } else {
    event.respondWith(networkFirst(request));
  }
});

function stamped(url) {
  return url.href.startsWith(RUNTIME) || (url.pathname.endsWith(".mpy") && url.search);
}

async function precache() {
  const cache = await caches.open(CACHE);
  await Promise.all(
    PRECACHE.map(async (path) => {
      const url = new URL(path, self.location);
      // (revalidated: an immutable runtime file in the HTTP cache may be an older build's)
      const response = await fetch(url, { cache: stamped(url) ? "default" : "no-cache" });
      if (url.href === CONFIG) {
        if (response.ok) await cache.put(CONFIG, await withoutToken(response));
        return; // (optional: the page can be told where Directus is in other ways)
      }
      if (!response.ok) throw new Error(url.href + ": HTTP " + response.status);
      await cache.put(url, response);
    }),
  );
}

async function page(event) {
  let response;
  try {
    response = await fetch(event.request);
  } catch (error) {
    // Offline: this build's page (the same page for every address: its query may differ).
    const cache = await caches.open(CACHE);
    const url = new URL(event.request.url);
    const key = url.pathname.endsWith("/index.html") ? INDEX : url.origin + url.pathname;
    const cached = (await cache.match(key)) || (await cache.match(INDEX));
    if (cached) return cached;
    throw error;
  }
  if (response.ok) {
    const id = event.resultingClientId;
    const newer = differs(response.clone()).catch(() => true); // (unsure: the network's)
    newerPages.set(id, newer);
    newer.then((verdict) => verdict || newerPages.delete(id));
    event.waitUntil(newer);
  }
  return response;
}

// Whether a page's index.html (a response) is not this build's.
async function differs(response) {
  const ours = await caches.match(INDEX, { cacheName: CACHE });
  return Boolean(ours) && (await ours.text()) !== (await response.text());
}

// A stamped file: from this build's cache, unless the page runs a newer build.
async function stampedFile(event) {
  const newer = newerPages.get(event.clientId);
  if (newer && (await newer)) return networkFirst(event.request);
  return cacheFirst(event.request);
}

async function config(request) {
  try {
    const response = await fetch(request);
    if (response.ok) {
      const cache = await caches.open(CACHE);
      await cache.put(CONFIG, await withoutToken(response.clone()));
    }
    return response;
  } catch (error) {
    const cached = await caches.match(CONFIG, { cacheName: CACHE });
    if (cached) return cached;
    throw error;
  }
}

async function withoutToken(response) {
  const settings = await response.json();
  delete settings.token;
  return new Response(JSON.stringify(settings), {
    headers: { "Content-Type": "application/json" },
  });
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function networkFirst(request) {
  try {
    return await fetch(request);
  } catch (error) {
    const cached = await caches.match(request, { cacheName: CACHE });
    if (cached) return cached;
    throw error;
  }
}
