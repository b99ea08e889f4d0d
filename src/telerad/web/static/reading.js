// The reading screen's keyboard and small helpers: macros typed as ".word" + space,
// "normal study" filling every empty part with its normal text, Ctrl+S to save now,
// Ctrl+Enter to sign, and the sign dialog. Saving itself is htmx's (hx-trigger).
(function () {
  "use strict";

  function form() { return document.getElementById("report"); }

  function expandMacro(el, macros) {
    // The word just typed before the caret, when it is ".keyword" of a macro.
    const at = el.selectionStart;
    const before = el.value.slice(0, at);
    const match = /(^|[\s(])\.([a-z0-9][a-z0-9_-]{0,31})\s$/.exec(before);
    if (!match || !(match[2] in macros)) return false;
    const start = at - match[2].length - 2;
    const snippet = macros[match[2]];
    el.value = el.value.slice(0, start) + snippet + " " + el.value.slice(at);
    const caret = start + snippet.length + 1;
    el.setSelectionRange(caret, caret);
    el.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  }

  function fillNormal() {
    const f = form();
    if (!f) return;
    f.querySelectorAll("[data-normal]").forEach(function (el) {
      const normal = el.dataset.normal;
      if (!normal) return;
      if (el.tagName === "SELECT" && el.multiple) {
        if (el.selectedOptions.length) return;
        normal.split(";").map(function (v) { return v.trim(); }).forEach(function (v) {
          const o = Array.from(el.options).find(function (x) { return x.value === v; });
          if (o) o.selected = true;
        });
      } else if (!el.value.trim()) {
        el.value = normal;
      }
    });
    save();
  }

  function toReport() {
    // The first empty part of the report, else the impression's text.
    const f = form();
    if (!f) return;
    const parts = Array.from(f.querySelectorAll("textarea, input:not([type=hidden]), select"));
    const empty = parts.find(function (el) { return !el.disabled && !String(el.value || "").trim(); });
    (empty || parts[parts.length - 1] || f).focus();
  }

  function save() {
    const f = form();
    if (f && window.htmx) window.htmx.trigger(f, "save");
  }

  function openSign(final) {
    const dialog = document.getElementById("sign-dialog");
    if (!dialog) return;
    document.getElementById("sign-final").value = final ? "1" : "0";
    document.getElementById("sign-kind").textContent = final ? "final" : "preliminary";
    document.getElementById("sign-result").innerHTML = "";
    save(); // sign what is on the screen
    dialog.showModal();
    const password = dialog.querySelector("input[type=password]");
    if (password) password.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    const f = form();
    if (!f) return;
    let macros = {};
    try { macros = JSON.parse(f.dataset.macros || "{}"); } catch (e) { macros = {}; }
    f.addEventListener("keyup", function (event) {
      if (event.key === " " && event.target.matches("textarea, input")) expandMacro(event.target, macros);
    });
    const normal = document.getElementById("normal");
    if (normal) normal.addEventListener("click", fillNormal);
    document.querySelectorAll("#open-sign, #open-sign-prelim").forEach(function (button) {
      button.addEventListener("click", function () { openSign(button.dataset.final === "1"); });
    });
    const cancel = document.getElementById("cancel-sign");
    if (cancel) cancel.addEventListener("click", function () { document.getElementById("sign-dialog").close(); });
    function keys(event) {
      const key = event.key.toLowerCase();
      if ((event.ctrlKey || event.metaKey) && key === "s") { event.preventDefault(); save(); }
      if ((event.ctrlKey || event.metaKey) && key === "enter" && document.getElementById("open-sign")) {
        event.preventDefault(); openSign(true);
      }
      if (event.altKey && key === "n") { event.preventDefault(); fillNormal(); }
      if (event.altKey && key === "r") { event.preventDefault(); toReport(); }
      if (event.altKey && key === "j") {
        const next = document.querySelector("a.next");
        if (next) { event.preventDefault(); location.href = next.href; }
      }
    }
    document.addEventListener("keydown", keys);
    // Sign only what was saved: the dialog's buttons wait for a save under way, whose
    // answer brings the version the signature is made on.
    function signing(enabled) {
      document.querySelectorAll("#sign-dialog button[type=submit]").forEach(function (b) {
        b.disabled = !enabled;
      });
    }
    f.addEventListener("htmx:beforeRequest", function () { signing(false); });
    f.addEventListener("htmx:afterRequest", function () { signing(true); });
    // The images have the focus while the radiologist looks at them: the same keys
    // work there (the viewer is served from this origin, so its window is reachable).
    const viewer = document.getElementById("viewer");
    if (viewer) {
      viewer.addEventListener("load", function () {
        try { viewer.contentWindow.addEventListener("keydown", keys, true); } catch (e) { /* not ours */ }
      });
    }
    // Leaving with a save still waiting: save first.
    window.addEventListener("beforeunload", save);
  });
})();
