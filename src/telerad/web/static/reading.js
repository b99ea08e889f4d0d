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
    document.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); save(); }
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter" && document.getElementById("open-sign")) {
        event.preventDefault(); openSign(true);
      }
      if (event.altKey && (event.key === "n" || event.key === "N")) { event.preventDefault(); fillNormal(); }
    });
    // Leaving with a save still waiting: save first.
    window.addEventListener("beforeunload", save);
  });
})();
