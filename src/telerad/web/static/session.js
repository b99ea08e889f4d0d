// Warns before a browser session ends for inactivity, and says so when it has ended.
// Asking is background traffic (X-Telerad-Background: 1): it never keeps the session
// alive; "Stay signed in" does. A radiologist whose session ends is "away": studies
// they hold go to another eligible reader.
(function () {
  "use strict";
  const WARN_SECONDS = 180;
  const CHECK_MS = 30000;
  let bar = null;
  let timer = null;
  let deadline = null;

  const STYLE =
    ".session-warning{position:fixed;top:0;left:0;right:0;z-index:10000;background:#7a4a12;" +
    "color:#ffe2bd;padding:8px 16px;font:14px system-ui,sans-serif;display:flex;gap:12px;" +
    "align-items:center;justify-content:center}.session-warning.ended{background:#7a1f2b;" +
    "color:#ffd7dc}.session-warning button,.session-warning a{background:#ffe2bd;color:#3a2206;" +
    "border:0;border-radius:4px;padding:4px 10px;font-weight:600;cursor:pointer;text-decoration:none}";

  function show(text, ended) {
    if (!document.getElementById("session-warning-style")) {
      const style = document.createElement("style");
      style.id = "session-warning-style";
      style.textContent = STYLE;
      document.head.appendChild(style);
    }
    if (!bar) {
      bar = document.createElement("div");
      bar.className = "session-warning";
      bar.setAttribute("role", "alert");
      bar.id = "session-warning";
      document.body.appendChild(bar);
    }
    bar.classList.toggle("ended", ended);
    bar.textContent = "";
    const span = document.createElement("span");
    span.textContent = text;
    bar.appendChild(span);
    if (ended) {
      const link = document.createElement("a");
      link.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      link.textContent = "Sign in again";
      bar.appendChild(link);
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Stay signed in";
      button.addEventListener("click", keep);
      bar.appendChild(button);
    }
  }

  function hide() {
    if (bar) { bar.remove(); bar = null; }
  }

  function render() {
    if (deadline === null) return;
    const left = Math.round((deadline - Date.now()) / 1000);
    if (left <= 0) {
      show("Your session has ended after a time without activity; studies you held may have been handed on.", true);
      return;
    }
    if (left > WARN_SECONDS) { hide(); return; }
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    show("You will be signed out for inactivity in " + minutes + ":" + seconds +
      " and your studies handed on to another reader.", false);
  }

  async function check() {
    try {
      const response = await fetch("/api/auth/session", {
        credentials: "same-origin", headers: { "X-Telerad-Background": "1" },
      });
      if (response.status === 401) { deadline = Date.now(); render(); return; }
      if (!response.ok) return;
      const body = await response.json();
      deadline = Date.now() + body.seconds_left * 1000;
      render();
    } catch (e) { /* offline for a moment: try again at the next check */ }
  }

  async function keep() {
    const response = await fetch("/api/auth/session", { method: "POST", credentials: "same-origin" });
    if (response.ok) {
      const body = await response.json();
      deadline = Date.now() + body.seconds_left * 1000;
    }
    render();
  }

  function start() {
    if (timer !== null) return;
    check();
    timer = setInterval(check, CHECK_MS);
    setInterval(render, 1000);
  }

  window.teleradSession = { start: start, check: check };
  if (document.currentScript && document.currentScript.dataset.start === "true") {
    document.addEventListener("DOMContentLoaded", start);
  }
})();
