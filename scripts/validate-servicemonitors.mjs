// Validates Prometheus Operator ServiceMonitors (monitoring.coreos.com/v1), which
// kubernetes-validate does not know, with the schema compiled from prometheus-operator's Go
// types in the npm package @kubernetes-models/prometheus-operator (installed by
// scripts/delivery-deps.sh under .tools/node). That schema checks types, required fields and
// enums; unlike kubernetes-validate --strict it does not reject unknown fields.
//
//   node scripts/validate-servicemonitors.mjs < objects.json   (a JSON array of objects)
//
// Prints one line per object and a last line 'N passed, N failed'; exits 1 if any failed.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.SERVICEMONITOR_MODULES || join(process.cwd(), ".tools/node/node_modules");
// The package exports ESM only: import its module file by path.
const entry = join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js");
const { ServiceMonitor } = await import(pathToFileURL(entry).href);

const objects = JSON.parse(readFileSync(0, "utf8"));
let passed = 0;
let failed = 0;
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name}`;
  try {
    if (object.apiVersion !== "monitoring.coreos.com/v1" || object.kind !== "ServiceMonitor") {
      throw new Error(`not a monitoring.coreos.com/v1 ServiceMonitor: ${object.apiVersion} ${object.kind}`);
    }
    new ServiceMonitor(object).validate();
    passed++;
    console.log(`ok   ${name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}: ${error.message}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
