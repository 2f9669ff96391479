// "Notify me on this device" (templates/notifications/settings.html): subscribes this browser through the
// service worker's pushManager with the platform's public key, and tells the platform (notifications/views.py).
"use strict";
(() => {
  const box = document.getElementById("push-settings");
  if (!box) return;
  const toggle = document.getElementById("push-toggle");
  const state = document.getElementById("push-state");
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const publicKey = box.dataset.publicKey;

  function say(text, isError) {
    state.textContent = text;
    state.classList.toggle("error", Boolean(isError));
  }

  function keyBytes(base64url) {
    const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4);
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    });
    const answer = await response.json().catch(() => ({}));
    return { status: response.status, error: answer.error };
  }

  async function subscribe(registration) {
    const options = { userVisibleOnly: true, applicationServerKey: keyBytes(publicKey) };
    let subscription = await registration.pushManager.subscribe(options);
    let answer = await post(box.dataset.subscribeUrl, subscription.toJSON());
    if (answer.status === 409) { // this browser's subscription is another account's: make a new one of our own
      await subscription.unsubscribe();
      subscription = await registration.pushManager.subscribe(options);
      answer = await post(box.dataset.subscribeUrl, subscription.toJSON());
    }
    if (answer.status >= 300) {
      await subscription.unsubscribe();
      throw new Error(answer.error || `the platform answered ${answer.status}`);
    }
  }

  async function unsubscribe(registration) {
    const subscription = await registration.pushManager.getSubscription();
    if (!subscription) return;
    const answer = await post(box.dataset.unsubscribeUrl, { endpoint: subscription.endpoint });
    await subscription.unsubscribe();
    if (answer.status >= 300 && answer.status !== 404) throw new Error(answer.error || `the platform answered ${answer.status}`);
  }

  async function start() {
    if (!publicKey) return say("Notifications are not set up on this platform.", true);
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      return say("This browser cannot show notifications from a web page. On an iPhone, add this site to the " +
                 "home screen first, then open it from there.", true);
    }
    if (Notification.permission === "denied") {
      return say("This browser blocks notifications from this site: allow them in the site's settings, then " +
                 "reload this page.", true);
    }
    const registration = await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.getSubscription();
    toggle.checked = Boolean(subscription);
    toggle.disabled = false;
    say(subscription ? "On: this device is told when your runs end." : "Off on this device.");

    toggle.addEventListener("change", async () => {
      toggle.disabled = true;
      try {
        if (toggle.checked) {
          const permission = await Notification.requestPermission();
          if (permission !== "granted") {
            toggle.checked = false;
            say("This browser does not allow notifications from this site" +
                (permission === "denied" ? ": allow them in the site's settings, then try again." : "."), true);
            return;
          }
          await subscribe(registration);
          say("On: this device is told when your runs end.");
        } else {
          await unsubscribe(registration);
          say("Off on this device.");
        }
      } catch (error) {
        toggle.checked = !toggle.checked;
        say(`That did not work: ${error.message}`, true);
      } finally {
        toggle.disabled = false;
      }
    });
  }

  start().catch((error) => say(`Notifications are not available here: ${error.message}`, true));
})();
