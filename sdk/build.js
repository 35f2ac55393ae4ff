// Bundles sdk/proctor.js with the recorder modules it imports from assets/ into one ES module,
// printed on stdout (proctor_app/sdk_bundle.py runs this with bun and serves the result).
// The shared modules import each other as Reflex's "$/public/..." and "$/utils/state"; here those
// resolve to assets/ and to sdk/backend_url.js.
import path from "node:path";

const root = path.resolve(import.meta.dir, "..");
const reflexPaths = {
  name: "reflex-paths",
  setup(build) {
    build.onResolve({ filter: /^\$\/public\// }, (args) => ({ path: path.join(root, "assets", args.path.slice("$/public/".length)) }));
    build.onResolve({ filter: /^\$\/utils\/state$/ }, () => ({ path: path.join(root, "sdk", "backend_url.js") }));
  },
};

const result = await Bun.build({
  entrypoints: [path.join(root, "sdk", "proctor.js")],
  format: "esm",
  target: "browser",
  minify: false,
  plugins: [reflexPaths],
});
if (!result.success) {
  for (const message of result.logs) console.error(message);
  process.exit(1);
}
process.stdout.write(await result.outputs[0].text());
