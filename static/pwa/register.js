// Registers the platform's service worker (served at /sw.js: its scope is the whole platform). It is what makes
// the platform installable, shows the offline page and receives notifications (docs/phone.md).
"use strict";
if ("serviceWorker" in navigator) {
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((error) => {
      console.warn("The service worker did not register:", error);
    });
  });
}
