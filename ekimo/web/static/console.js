// ekimo console: small improvements over plain forms (every page works without this script).
"use strict";

// A "Copy" button next to a secret: data-copy names the id of the element holding the text.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    // Clipboard refused (plain http on another host): select the text for Ctrl+C instead.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});

// Drag and drop a file onto a .drop area to fill its file field.
document.querySelectorAll(".drop").forEach((area) => {
  const input = area.querySelector("input[type=file]");
  if (!input) return;
  area.addEventListener("dragover", (event) => { event.preventDefault(); area.classList.add("over"); });
  area.addEventListener("dragleave", () => area.classList.remove("over"));
  area.addEventListener("drop", (event) => {
    event.preventDefault();
    area.classList.remove("over");
    if (event.dataTransfer.files.length) input.files = event.dataTransfer.files;
  });
});

// A page showing work in progress (data-refresh="seconds") reloads itself until it is done.
const refreshing = document.querySelector("[data-refresh]");
if (refreshing) {
  const seconds = Number(refreshing.dataset.refresh) || 2;
  setTimeout(() => window.location.reload(), seconds * 1000);
}
