// Parses every .cdc file under the given directories (default: this folder)
// with the official Cadence 1.0 parser (WebAssembly) and fails on any error,
// printing file:line:col: message. The parser checks syntax only; types are
// checked when the contracts are deployed (the emulator scenario suite).
"use strict";
const fs = require("fs");
const path = require("path");
const { CadenceParser } = require("@onflow/cadence-parser");

function cdcFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules") out.push(...cdcFiles(full));
    } else if (entry.name.endsWith(".cdc")) {
      out.push(full);
    }
  }
  return out.sort();
}

async function main() {
  const roots = process.argv.length > 2 ? process.argv.slice(2) : [__dirname];
  const wasm = fs.readFileSync(
    path.join(__dirname, "node_modules", "@onflow", "cadence-parser", "dist", "cadence-parser.wasm"),
  );
  // The Go runtime inside the WebAssembly module logs a start-up banner
  // through console.debug: keep it off the output.
  console.debug = () => {};
  const parser = await CadenceParser.create(wasm);
  const files = roots.flatMap((r) => (fs.statSync(r).isDirectory() ? cdcFiles(r) : [r]));
  let failures = 0;
  for (const file of files) {
    const result = parser.parse(fs.readFileSync(file, "utf8"));
    const errors = (result.error && result.error.Errors) || [];
    for (const e of errors) {
      const pos = e.Pos || e.StartPos || {};
      console.error(`${path.relative(process.cwd(), file)}:${pos.Line ?? 0}:${(pos.Column ?? 0) + 1}: ${e.Message}`);
      failures++;
    }
  }
  if (files.length === 0) {
    console.error("no .cdc files found");
    process.exit(1);
  }
  console.log(`cadence-parser: ${files.length} files, ${failures} errors`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
