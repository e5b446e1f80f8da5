// bosun's dashboard: live pages. An element with data-live="URL" follows that event
// stream; on each change the page is fetched again and its #live part swapped in, so
// what shows is always what the server rendered. No inline script: the CSP forbids it.
"use strict";

(function () {
  const live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) {
    return;
  }
  let pending = false;
  async function refresh() {
    if (pending) {
      return;
    }
    pending = true;
    try {
      const answer = await fetch(window.location.href, { credentials: "same-origin", headers: { accept: "text/html" } });
      if (answer.redirected || !answer.ok) {
        window.location.reload();
        return;
      }
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById("live");
      const current = document.getElementById("live");
      if (fresh && current) {
        current.replaceWith(document.importNode(fresh, true));
        document.documentElement.dataset.updatedAt = String(Date.now());
      }
    } finally {
      pending = false;
    }
  }
  const events = new EventSource(live.dataset.live);
  events.addEventListener("change", refresh);
})();
