// The sign-in and sign-out forms. Sign-in posts the credentials to /api/auth/login, which sets
// the session cookie itself (HttpOnly: no script here or anywhere else ever sees the token), then
// loads this page again in full: its new state socket carries the cookie, and the page's on_load
// sends the signed-in user on to `next` (a full load of `next` itself would end on "next/", the
// static server's redirect).
import { createElement as h, useState } from "react";
import { getBackendURL } from "$/utils/state";

async function signIn(email, password, fallbackError) {
  const response = await fetch(new URL("/api/auth/login", getBackendURL()), {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(answer.detail || fallbackError);
  }
}

// `children` are the fields and the submit button (rendered by the page); the error goes below.
// The server's errors come in the page's language; `fallbackError` (translated) when it gave none.
export function LoginForm({ children, fallbackError }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  async function onSubmit(event) {
    event.preventDefault();
    if (busy) return;
    const form = new FormData(event.currentTarget);
    setBusy(true);
    try {
      await signIn(form.get("email"), form.get("password"), fallbackError);
      window.location.reload();
    } catch (failure) {
      setError(failure instanceof TypeError ? fallbackError : failure.message);
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

// Sign-out: the route ends the session and clears the cookie; then the login page, in full, so
// the state socket is a new one without the cookie.
export function LogoutForm({ children }) {
  async function onSubmit(event) {
    event.preventDefault();
    await fetch(new URL("/api/auth/logout", getBackendURL()), {
      method: "POST", credentials: "same-origin", cache: "no-store",
    }).catch(() => null);
    window.location.assign("/login");
  }

  return h("form", { id: "logout-form", onSubmit }, children);
}
