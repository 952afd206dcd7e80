// Tells the reader when a submission changed since the page was shown:
// asks /changes every few seconds and shows the "reload" note when its
// number grew. Nothing is reloaded by itself (a half-typed reason stays).
"use strict";
(function () {
  const body = document.body;
  const shown = Number(body.dataset.change);
  const url = body.dataset.changesUrl;
  if (!url || Number.isNaN(shown) || body.dataset.change === "") {
    return;
  }
  const note = document.getElementById("stale");
  async function poll() {
    try {
      const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
      if (response.ok) {
        const {change} = await response.json();
        if (change > shown) {
          note.hidden = false;
          return;
        }
      }
    } catch (error) {
      // The server stopped or restarted: try again later.
    }
    window.setTimeout(poll, 5000);
  }
  window.setTimeout(poll, 5000);
})();
