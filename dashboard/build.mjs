// Builds dist/ (which the herald binary embeds) from src/ and the pinned packages in package-lock.json.
// The output is deterministic: CI rebuilds it and fails when it differs from the committed dist/.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
const common = { bundle: true, minify: true, legalComments: "eof", logLevel: "warning" };
await build({
  ...common,
  entryPoints: ["src/main.js"],
  outfile: "dist/app.js",
  format: "iife",
  target: ["es2020"],
});
await build({ ...common, entryPoints: ["src/app.css"], outfile: "dist/app.css" });
copyFileSync("src/index.html", "dist/index.html");
copyFileSync("src/favicon.svg", "dist/favicon.svg");
