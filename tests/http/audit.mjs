// Runs the graphql-http server audits (the GraphQL over HTTP spec's MUST and SHOULD checks)
// against the URL given as the first argument and prints one JSON line per audit.
// Usage: node audit.mjs http://127.0.0.1:PORT/graphql  (NODE_PATH must name tools/node/node_modules)
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_TOOLS_MODULES, "x.js"));
const { serverAudits } = require("graphql-http");

const url = process.argv[2];
const results = [];
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  results.push({ id: audit.id, name: audit.name, status: result.status, reason: result.reason ?? null });
}
process.stdout.write(JSON.stringify(results) + "\n");
