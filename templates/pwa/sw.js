// The platform's service worker (inspect_site/pwa.py, docs/phone.md). It keeps static files and the offline page,
// nothing else: pages and API answers are private and change, so they always come from the network.
"use strict";
const CACHE = "inspect-static-v1";
const STATIC_PREFIX = "{{ static_prefix|escapejs }}";
const OFFLINE_PATH = "{{ offline_path|escapejs }}";
const PRECACHE = [{% for url in precache %}"{{ url|escapejs }}"{% if not forloop.last %}, {% endif %}{% endfor %}];
const ICON = "{{ icon|escapejs }}";

self.addEventListener("install", (event) => {
  // The offline page without cookies: the same page for everyone, holding nobody's name.
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(
    PRECACHE.map((url) => new Request(url, { credentials: "omit" })))).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

function isStatic(url) {
  return url.origin === self.location.origin && url.pathname.startsWith(STATIC_PREFIX);
}

// Static files: the network first (their URLs carry no version, so a cached one could be stale), the cache when
// offline. Navigations: the network, or the offline page (never a page kept from before). The rest: untouched.
self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (isStatic(url)) {
    event.respondWith(fetch(request).then((response) => {
      if (response.ok && response.type === "basic") {
        const copy = response.clone();
        event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
      }
      return response;
    }).catch(() => caches.match(request).then((cached) => cached || Response.error())));
  } else if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(() => caches.match(OFFLINE_PATH).then(
      (cached) => cached || new Response("You are offline.", { status: 503, headers: { "Content-Type": "text/plain" } }))));
  }
});

// A notification from the platform (notifications/wire.py: title, body, url, tag).
self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  const title = typeof data.title === "string" && data.title ? data.title : "Inspect";
  event.waitUntil(self.registration.showNotification(title, {
    body: typeof data.body === "string" ? data.body : "",
    tag: typeof data.tag === "string" ? data.tag : undefined,
    renotify: typeof data.tag === "string",
    icon: ICON,
    data: { url: samePlatform(data.url) },
  }));
});

// Only a page of the platform's own: a notification cannot send anyone elsewhere.
function samePlatform(path) {
  try {
    const url = new URL(typeof path === "string" ? path : "/", self.location.origin);
    return url.origin === self.location.origin ? url.href : self.location.origin + "/";
  } catch (e) {
    return self.location.origin + "/";
  }
}

// A tap opens the session: its tab if one is open, else a new one.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = (event.notification.data && event.notification.data.url) || self.location.origin + "/";
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
    const open = windows.find((client) => new URL(client.url).pathname === new URL(target).pathname);
    return open ? open.focus() : self.clients.openWindow(target);
  }));
});
