// The sign-in form: posts the credentials to /api/auth/login, which sets the session cookie itself
// (HttpOnly: no script here or anywhere else ever sees the token), then loads the next page in
// full, so the new state socket carries the cookie.
import { createElement as h, useState } from "react";
import { getBackendURL } from "$/utils/state";

const FALLBACK_ERROR = "Sign-in failed. Try again.";

async function signIn(email, password, next) {
  const response = await fetch(new URL("/api/auth/login", getBackendURL()), {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password, next }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(answer.detail || FALLBACK_ERROR);
  }
  return answer.next;
}

// `children` are the fields and the submit button (rendered by the page); the error goes below.
export function LoginForm({ children }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function onSubmit(event) {
    event.preventDefault();
    if (busy) return;
    const form = new FormData(event.currentTarget);
    const next = new URLSearchParams(window.location.search).get("next") || "";
    setBusy(true);
    try {
      // The server only answers same-site paths here (auth/redirects.py).
      window.location.assign(await signIn(form.get("email"), form.get("password"), next));
    } catch (failure) {
      setError(failure instanceof TypeError ? FALLBACK_ERROR : failure.message);
      setBusy(false);
    }
  }

  return h("form", { id: "login-form", onSubmit },
    children,
    error ? h("div", {
      id: "login-error", role: "alert",
      style: { marginTop: "0.75em", color: "var(--red-11)", background: "var(--red-3)",
               padding: "0.5em 0.75em", borderRadius: "var(--radius-2)" },
    }, error) : null);
}
