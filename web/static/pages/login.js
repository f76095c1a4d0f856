// Sign in with an API key or an OIDC token: checked with one call before the console opens.

import { clearToken, setToken } from "../api.js";
import { h, notice } from "../dom.js";
import { forget, me } from "../session.js";

export function render(view, { query }) {
  const error = h("div", { id: "login-error" });
  const input = h("input", {
    id: "login-key",
    name: "key",
    type: "password",
    spellcheck: "false",
    autocomplete: "off",
    placeholder: "amx_… or eyJhbGciOi…",
  });
  const submit = h("button", { class: "btn btn-primary btn-block", type: "submit", id: "login-submit" }, "Sign in");

  async function signIn(event) {
    event.preventDefault();
    const key = input.value.trim();
    error.replaceChildren();
    if (!key) {
      error.append(notice("error", "Paste an API key or a token."));
      return;
    }
    submit.disabled = true;
    setToken(key);
    forget();
    try {
      await me({ refresh: true });
      const next = query.next && query.next.startsWith("#/") && !query.next.startsWith("#/login") ? query.next : "#/models";
      location.hash = next;
    } catch (err) {
      clearToken();
      const why = err.status === 401 ? "The key or token was refused." : "Signing in failed.";
      error.append(notice("error", h("strong", {}, why), " ", err.text || err.message));
    } finally {
      submit.disabled = false;
    }
  }

  view.append(
    h(
      "div",
      { class: "login-wrap" },
      h(
        "form",
        { class: "card login-card", id: "login-form", onsubmit: signIn },
        h("div", { class: "login-brand" }, h("img", { src: "favicon.svg", alt: "", width: 40, height: 40 }), h("span", {}, "AIMatrix")),
        h("h1", {}, "Sign in to the console"),
        h("p", { class: "muted" }, "Paste an API key or an OIDC access token. It is kept in this tab only, until you log out or close it."),
        h("label", { for: "login-key", class: "field-label" }, "API key or token"),
        input,
        error,
        submit,
        h(
          "p",
          { class: "muted small" },
          "The admin key of a local platform is in ",
          h("code", {}, ".aimatrix/api_key"),
          "; an admin creates keys for others with POST /api/v1/api-keys.",
        ),
      ),
    ),
  );
  input.focus();
}
