// The browser's side of proctor_app/i18n.py. The exam page's components hand in the texts of the
// page's language (the `messages` prop, from the same catalogue) and the language; t() gives the
// English msgid for a text without a translation, with its `{name}` placeholders filled in.
let messages = {};
let language;

export function useMessages(texts, lang) {
  messages = texts || {};
  language = lang || undefined;
}

export function t(msgid, params = {}) {
  const text = messages[msgid] ?? msgid;
  return text.replace(/\{(\w+)\}/g, (placeholder, name) => (name in params ? String(params[name]) : placeholder));
}

// A count as the page's language writes it.
export function formatCount(count) {
  return new Intl.NumberFormat(language).format(count);
}
