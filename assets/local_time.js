// An instant sent by the server as UTC ISO 8601, shown in the browser's time zone and the page's
// language (proctor_app/components/local_time.py), with the UTC time on hover.
import { createElement as h } from "react";

export function LocalTime({ iso, lang, id }) {
  if (!iso) return null;
  const moment = new Date(iso);
  const locale = lang || undefined;  // none: the browser's own
  const style = { dateStyle: "medium", timeStyle: "short" };
  const local = new Intl.DateTimeFormat(locale, style).format(moment);
  const utc = new Intl.DateTimeFormat(locale, { ...style, timeZone: "UTC" }).format(moment);
  return h("time", { dateTime: iso, title: `${utc} UTC`, className: "local-time", id }, local);
}
