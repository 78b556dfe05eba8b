#!/usr/bin/env node
// A `solc`-compatible command line over solc-js, just wide enough for py-solc-x:
//   --version            prints "Version: <version>" (what py-solc-x parses)
//   --standard-json      reads standard JSON on stdin, writes the output JSON alone on stdout
// The npm package's own CLI prints a banner line before the JSON, which breaks any JSON consumer.
"use strict";
const path = require("path");

function loadSolc() {
  const root = process.env.LEDGERCRM_NODE_MODULES;
  return root ? require(path.join(root, "solc")) : require("solc");
}

const args = process.argv.slice(2);
const solc = loadSolc();
if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface (solc-js)\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solcjs-driver: only --version and --standard-json are supported\n");
  process.exit(2);
}
const chunks = [];
process.stdin.on("data", (chunk) => chunks.push(chunk));
process.stdin.on("end", () => {
  // Sources arrive with their content inlined by the caller, so no import callback is needed.
  process.stdout.write(solc.compile(Buffer.concat(chunks).toString("utf8")));
});
