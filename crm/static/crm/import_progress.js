// Polls an import's progress and reloads the page when the worker is done.
(function () {
  "use strict";
  const box = document.querySelector(".crm-progress");
  if (!box) return;
  const bar = box.querySelector("progress");
  const rows = box.querySelector(".crm-progress-rows");
  const template = rows.textContent.replace(/[\d,]+/, "{rows}");
  async function poll() {
    try {
      const response = await fetch(box.dataset.progressUrl, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        if (!data.running) { window.location.reload(); return; }
        bar.value = data.fraction;
        rows.textContent = template.replace("{rows}", data.rows.toLocaleString());
      }
    } catch (error) { /* a missed poll is retried */ }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();
