// The console's only script: copy buttons, shown once it has loaded, so a
// page without JavaScript never offers a button that does nothing; and
// single-use forms that send one request however often they are clicked.
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

  // The server acts on a single-use form once and refuses it after that. A
  // second click would replace the page showing the new secret with that
  // refusal, so only the first submit is sent.
  for (const field of document.querySelectorAll("input[name=form_id]")) {
    const form = field.form;
    if (!form) continue;
    form.addEventListener("submit", (event) => {
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "true";
      for (const button of form.querySelectorAll("button[type=submit]")) {
        button.disabled = true;
      }
    });
  }
})();
