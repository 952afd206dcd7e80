// Keeps a page current without reloading it. Every two seconds (or what
// the page's data-live-seconds says) it asks /changes for a number that grows with each change (to any submission on
// the queue and trends pages, to this one on a submission's page). When the
// number grew, it fetches the same address again and swaps in the page's
// live part: the element marked data-live, or else <main>. The new part is
// server-rendered and escaped like any page; DOMParser runs no script.
//
// A reader in the middle of a form (a field focused or changed) is never
// interrupted: the "reload" note is shown instead.
"use strict";
(function () {
  const body = document.body;
  const PERIOD = 1000 * (Number(body.dataset.liveSeconds) || 2);
  const url = body.dataset.changesUrl;
  let shown = Number(body.dataset.change);
  if (!url || body.dataset.change === "" || Number.isNaN(shown)) {
    return;
  }
  const note = document.getElementById("stale");

  function livepart(doc) {
    return doc.querySelector("[data-live]") || doc.querySelector("main");
  }

  function changedByReader(control) {
    if (control === document.activeElement) {
      return true;
    }
    if (control.type === "checkbox" || control.type === "radio") {
      return control.checked !== control.defaultChecked;
    }
    if (control.tagName === "SELECT") {
      return Array.from(control.options).some((o) => o.selected !== o.defaultSelected);
    }
    return control.value !== control.defaultValue;
  }

  function inUse(part) {
    return Array.from(part.querySelectorAll("input, textarea, select")).some(changedByReader);
  }

  function rowStates(part) {
    const states = new Map();
    for (const row of part.querySelectorAll("tr[data-id]")) {
      const cell = row.querySelector(".state");
      states.set(row.dataset.id, cell ? cell.textContent : "");
    }
    return states;
  }

  function keepOpenDetails(from, to) {
    const was = Array.from(from.querySelectorAll("details"));
    const now = Array.from(to.querySelectorAll("details"));
    if (was.length !== now.length) {
      return;
    }
    was.forEach((d, i) => {
      now[i].open = d.open;
    });
  }

  async function refresh() {
    const here = livepart(document);
    if (!here || inUse(here)) {
      note.hidden = false;
      return false;
    }
    const response = await fetch(window.location.href, {credentials: "same-origin", cache: "no-store"});
    if (!response.ok) {
      return true;
    }
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = livepart(doc);
    if (!fresh || fresh.tagName !== here.tagName) {
      note.hidden = false;
      return false;
    }
    const before = rowStates(here);
    if (here.tagName === "MAIN") {
      keepOpenDetails(here, fresh);
    }
    const part = document.adoptNode(fresh);
    here.replaceWith(part);
    for (const [id, state] of rowStates(part)) {
      if (before.get(id) !== state) {
        part.querySelector(`tr[data-id="${CSS.escape(id)}"]`).classList.add("changed");
      }
    }
    document.title = doc.title;
    shown = Number(doc.body.dataset.change);
    body.dataset.change = String(shown);
    return true;
  }

  async function poll() {
    let again = true;
    try {
      const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
      if (response.ok) {
        const {change} = await response.json();
        if (change !== shown) {
          again = await refresh();
        }
      }
    } catch (error) {
      // The server stopped or restarted: try again later.
    }
    if (again) {
      window.setTimeout(poll, PERIOD);
    }
  }
  window.setTimeout(poll, PERIOD);
})();
