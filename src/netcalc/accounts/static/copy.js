// The console's only script: copy buttons, shown once it has loaded, so a
// page without JavaScript never offers a button that does nothing.
"use strict";

(() => {
  const region = document.getElementById("copy-status");

  function announce(button, text) {
    button.textContent = text;
    if (region) region.textContent = text;
    window.setTimeout(() => { button.textContent = button.dataset.label; }, 2000);
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    const target = document.getElementById(button.dataset.copy);
    if (!target) continue;
    button.dataset.label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(target.textContent);
        announce(button, "Copied");
      } catch {
        // No clipboard here (a plain-HTTP host): select the text for Ctrl+C.
        window.getSelection().selectAllChildren(target);
        announce(button, "Selected: press Ctrl+C");
      }
    });
  }
})();
