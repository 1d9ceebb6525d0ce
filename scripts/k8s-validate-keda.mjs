// Validates every KEDA object (apiVersion keda.sh/*) in the YAML files given
// against KEDA's CRD schemas as packaged by @kubernetes-models/keda (npm).
// Run by scripts/k8s-validate, with FLTS_KEDA_MODULES at the node_modules
// holding it and `yaml`. Exits 1 when any object is invalid, listing each.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.FLTS_KEDA_MODULES;
const load = (p) => import(pathToFileURL(path.join(modules, p)).href);
const YAML = await load("yaml/dist/index.js");
const keda = await load("@kubernetes-models/keda/keda.sh/v1alpha1/index.js");

let failed = false, checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    const obj = doc.toJS();
    if (!obj || !String(obj.apiVersion || "").startsWith("keda.sh/")) continue;
    const where = `${file}: ${obj.kind}/${obj.metadata?.name}`;
    const Model = obj.apiVersion === "keda.sh/v1alpha1" ? keda[obj.kind] : undefined;
    if (!Model) {
      console.error(`FAIL ${where}: no KEDA schema for ${obj.apiVersion} ${obj.kind}`);
      failed = true;
      continue;
    }
    try {
      new Model(obj).validate();
      checked++;
      console.log(`ok   ${where}`);
    } catch (e) {
      console.error(`FAIL ${where}: ${e.message}`);
      failed = true;
    }
  }
}
console.log(`${checked} KEDA objects valid`);
process.exit(failed ? 1 : 0);
