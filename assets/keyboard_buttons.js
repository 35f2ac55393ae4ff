// Keyboard use of what the mouse clicks on the page (proctor_app/components/keyboard.py): Enter
// and Space click an element marked data-key-activates (a card with role="button", which has no
// keyboard behaviour of its own, unlike a <button>), and Escape clicks the button marked
// data-escape-clicks (the one that closes what is open). Renders nothing.
import { useEffect } from "react";

function onKeyDown(event) {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target instanceof Element ? event.target : null;
  if ((event.key === "Enter" || event.key === " ") && target?.matches("[data-key-activates]")) {
    event.preventDefault(); // Space would scroll the page
    target.click();
  } else if (event.key === "Escape") {
    const close = document.querySelector("[data-escape-clicks]");
    if (close) {
      event.preventDefault();
      close.click();
    }
  }
}

export function KeyboardButtons() {
  useEffect(() => {
    document.addEventListener("keydown", onKeyDown);
    return () => document.removeEventListener("keydown", onKeyDown);
  }, []);
  return null;
}
