// What Reflex's "$/utils/state" gives the shared modules on our own pages, for the SDK on another
// site's page: the app is wherever this module was loaded from.
export function getBackendURL() {
  return new URL(import.meta.url).origin;
}
