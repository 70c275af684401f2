// Build the static web app: copy the page and onnxruntime-web's WebAssembly runtime into dist/ (or --out DIR).
// The model itself is exported by Python into DIR/model (htc_dl.bundle.build_webapp, which runs this script first).
// Usage: npm ci && node build.mjs [--out dist]
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out");
const out = resolve(outIndex >= 0 ? args[outIndex + 1] : join(here, "dist"));
const ortDist = join(here, "node_modules", "onnxruntime-web", "dist");
const ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"];
const PAGE_FILES = ["index.html", "isolate.js", "isolation-sw.js", "app.js", "answer.js", "style.css"];

if (!existsSync(ortDist)) {
  console.error(`onnxruntime-web is not installed in ${ortDist}: run \`npm ci\` in ${here} first.`);
  process.exit(1);
}
const version = JSON.parse(readFileSync(join(here, "node_modules", "onnxruntime-web", "package.json"), "utf8")).version;
const pinned = JSON.parse(readFileSync(join(here, "package.json"), "utf8")).dependencies["onnxruntime-web"];
if (version !== pinned) {
  console.error(`node_modules has onnxruntime-web ${version}, package.json pins ${pinned}: run \`npm ci\` again.`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });
rmSync(join(out, "ort"), { recursive: true, force: true });
mkdirSync(join(out, "ort"));
for (const f of ORT_FILES) cpSync(join(ortDist, f), join(out, "ort", f));
for (const f of PAGE_FILES) cpSync(join(here, f), join(out, f));
writeFileSync(join(out, "ort", "VERSION"), `onnxruntime-web ${version}\n`);
writeFileSync(join(out, ".nojekyll"), "");   // GitHub Pages: serve the files as they are
console.log(`built ${out}: page + onnxruntime-web ${version}${existsSync(join(out, "model", "model.onnx")) ? " + model" : " (no model yet: htc_dl.bundle.build_webapp exports it)"}`);
