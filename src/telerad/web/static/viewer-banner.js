// A line above the OHIF Viewer: the study's priority and time left, the patient (age,
// sex), the accession, the reason for the exam, the ordering physician and the facility,
// with a link back to the worklist. The viewer itself is OHIF's unmodified build.
(function () {
  "use strict";
  const HEIGHT = 30;

  function text(parts) {
    return parts.filter(function (p) { return p; }).join(" · ");
  }

  function item(label, value, className) {
    const span = document.createElement("span");
    if (className) span.className = className;
    if (label) {
      const b = document.createElement("b");
      b.textContent = label + " ";
      span.appendChild(b);
    }
    span.appendChild(document.createTextNode(value));
    return span;
  }

  function render(c) {
    const bar = document.createElement("div");
    bar.id = "telerad-study-context";
    bar.setAttribute("role", "region");
    bar.setAttribute("aria-label", "Study context");
    if (c.priority) bar.appendChild(item("", c.priority.toUpperCase(), "tier tier-" + c.priority));
    if (c.time_left) bar.appendChild(item("", c.time_left + (c.time_left.endsWith("overdue") ? "" : " left"), "left status-" + c.status));
    bar.appendChild(item("", text([c.patient_name, text([c.age, c.sex])]), "patient"));
    if (c.accession) bar.appendChild(item("Acc", c.accession));
    if (c.description) bar.appendChild(item("", c.description));
    bar.appendChild(item("Reason", c.reason_for_exam || (c.has_order ? "none given" : "no order"), "reason"));
    if (c.ordering_physician) bar.appendChild(item("Ordered by", c.ordering_physician));
    if (c.facility) bar.appendChild(item("", c.facility));
    const back = document.createElement("a");
    back.href = c.on_worklist ? "/worklist" : "/";
    back.textContent = c.on_worklist ? "← Worklist" : "← Studies";
    bar.insertBefore(back, bar.firstChild);
    document.body.insertBefore(bar, document.body.firstChild);
    document.documentElement.style.setProperty("--telerad-banner", HEIGHT + "px");
    document.body.classList.add("telerad-with-banner");
    if (c.session && window.teleradSession) window.teleradSession.start();
  }

  async function load() {
    if (window.self !== window.top) return; // framed by the reading screen, which has its own
    const uid = new URLSearchParams(location.search).get("StudyInstanceUIDs");
    if (!uid) return;
    const response = await fetch("/api/worklist/context/" + encodeURIComponent(uid.split(",")[0]), {
      credentials: "same-origin", headers: { "X-Telerad-Background": "1" },
    });
    if (!response.ok) return;
    render(await response.json());
  }

  document.addEventListener("DOMContentLoaded", load);
})();
