// Validates rendered shardlm manifests offline (no API server):
//   node validate.mjs [--schema-only] FILE.yaml...
// 1. every object against the Kubernetes JSON schemas (kubernetes-models'
//    validate(); unknown apiVersion/kind is an error);
// 2. unless --schema-only, shardlm's own rules: the worker StatefulSet, its
//    headless Service, the layout ConfigMap, the coordinator's worker list,
//    probes, threads = CPU limit, PDB, NetworkPolicy, and a dry run of the
//    worker entrypoint script for every ordinal (with a stand-in binary).
// Prints one line per problem and exits 1 if there is any.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { parseAllDocuments } from "yaml";

// Flags the binaries accept: read from `BIN --help` when SHARDLM_BIN_DIR
// names the build's bin/ (check.sh BIN_DIR, as ctest runs it), else this
// copy of their --help. A command with any other flag would not start.
const KNOWN_FLAGS = {
  "shardlm-worker": ["--model", "-m", "--layers", "--listen", "--threads", "-t", "--kv-budget",
    "--kv-type", "--ctx", "--max-batch", "--max-message-size", "--shutdown-grace", "--metrics-listen",
    "--tls-cert", "--tls-key", "--tls-ca", "--insecure", "--health-listen", "--peer-tls-cert",
    "--peer-tls-key", "--peer-tls-ca", "--peer-tls-server-name", "--max-peers", "--peer-idle"],
  "shardlm-coordinator": ["--model", "-m", "--workers", "--listen", "--max-active", "--max-queued",
    "--prefill-chunk", "--max-batch-tokens", "--worker-wait", "--call-timeout",
    "--failover-timeout-ms", "--hidden-dtype", "--http-listen", "--api-key", "--chat-template",
    "--metrics-listen", "--tls-cert", "--tls-key", "--tls-client-ca", "--worker-tls-ca",
    "--worker-tls-cert", "--worker-tls-key", "--worker-tls-server-name", "--insecure",
    "--auth-token-file", "--health-listen", "--topology"],
};
function flagsOf(binary) {
  const dir = process.env.SHARDLM_BIN_DIR;
  if (!dir) return new Set(KNOWN_FLAGS[binary]);
  const r = spawnSync(join(dir, binary), ["--help"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${join(dir, binary)} --help failed: ${r.stderr}`);
  // "  -m, --model V     help text" -> -m, --model
  const flags = new Set();
  for (const line of r.stdout.split("\n")) {
    const m = /^ {2}(-[^ ,]+(?:, -[^ ,]+)*)/.exec(line);
    if (m) for (const f of m[1].split(", ")) flags.add(f);
  }
  return flags;
}
const WORKER_FLAGS = flagsOf("shardlm-worker");
const COORDINATOR_FLAGS = flagsOf("shardlm-coordinator");

const problems = [];
const fail = (where, what) => problems.push(`${where}: ${what}`);

async function schemaCheck(doc, where) {
  const { apiVersion, kind } = doc ?? {};
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    fail(where, "object without apiVersion/kind");
    return;
  }
  let mod;
  try {
    mod = await import(`kubernetes-models/${apiVersion}`);
  } catch {
    fail(where, `unknown apiVersion ${apiVersion}`);
    return;
  }
  const Model = mod[kind];
  if (typeof Model !== "function") {
    fail(where, `unknown kind ${kind} in ${apiVersion}`);
    return;
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    const details = (e.errors ?? []).map((x) => `${x.instancePath} ${x.message}`).join("; ");
    fail(where, `${kind}/${doc.metadata?.name}: ${details || e.message}`);
  }
}

const matches = (selector, labels) =>
  selector && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

// "4", 4, "4000m" -> 4; undefined if not a quantity of CPUs.
function cpus(q) {
  const s = String(q ?? "");
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s);
  if (/^\d+m$/.test(s)) return Number(s.slice(0, -1)) / 1000;
  return undefined;
}

function envValue(container, name) {
  const e = (container.env ?? []).find((x) => x.name === name);
  return e === undefined ? undefined : e.value ?? e.valueFrom;
}

// Probes go to the port named "health" when the container has one (the
// plaintext --health-listen port next to a TLS port), else to `port`.
function checkProbes(container, port, where) {
  port = container.ports?.find((p) => p.name === "health")?.containerPort ?? port;
  for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const p = container[probe];
    if (!p) fail(where, `container ${container.name} has no ${probe}`);
    else if (p.grpc?.port !== port) {
      fail(where, `${probe} of ${container.name} must be a grpc probe on port ${port}`);
    }
  }
}

// The binaries refuse plaintext unless --insecure: each group of TLS flags
// (one per side) must be complete, or --insecure given.
function checkSecurity(args, who, groups, where) {
  const has = (f) => args.some((a) => a === f || a.startsWith(`${f}=`));
  if (has("--insecure")) return;
  for (const group of groups) {
    const missing = group.filter((f) => !has(f));
    if (missing.length > 0) fail(where, `${who} has neither ${missing.join(", ")} nor --insecure (it would not start)`);
  }
}

// Flags in args of the form --flag=value or --flag value.
function checkFlags(args, known, where) {
  for (const a of args) {
    if (!a.startsWith("-")) continue;
    const flag = a.split("=")[0];
    if (!known.has(flag)) fail(where, `flag ${flag} does not exist in the binary (yet)`);
  }
}

// "ORDINAL FIRST:LAST" lines -> Map(ordinal -> {first, last, text}).
function parseLayout(text, where) {
  const layout = new Map();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\d+)\s+(\d+):(\d*)$/.exec(line);
    if (!m) {
      fail(where, `layout line '${line}' is not 'ORDINAL FIRST:LAST'`);
      continue;
    }
    const [ordinal, first, last] = [Number(m[1]), Number(m[2]), m[3] === "" ? Infinity : Number(m[3])];
    if (first >= last) fail(where, `layout line '${line}': empty layer range`);
    if (layout.has(ordinal)) fail(where, `layout names ordinal ${ordinal} twice`);
    layout.set(ordinal, { first, last, text: `${m[2]}:${m[3]}` });
  }
  return layout;
}

// Runs the worker entrypoint script as pod `hostname` with a stand-in binary
// that prints its arguments; returns {status, args, stderr}.
function dryRunEntrypoint(dir, script, hostname, env) {
  const fake = join(dir, "fake-worker");
  writeFileSync(fake, '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n', { mode: 0o755 });
  const r = spawnSync("/bin/sh", [script], {
    env: { PATH: process.env.PATH, ...env, HOSTNAME: hostname, SHARDLM_WORKER_BIN: fake },
    encoding: "utf8",
  });
  return { status: r.status, args: r.stdout.split("\n").filter((x) => x !== ""), stderr: r.stderr };
}

function shardlmCheck(objects, where) {
  const byKind = (kind) => objects.filter((o) => o.kind === kind);
  const sts = byKind("StatefulSet").find((o) => o.metadata.name.endsWith("shardlm-worker"));
  const coord = byKind("Deployment").find((o) => o.metadata.name.endsWith("shardlm-coordinator"));
  if (!sts || !coord) {
    fail(where, "needs the StatefulSet shardlm-worker and the Deployment shardlm-coordinator");
    return;
  }
  const pod = sts.spec.template;
  const worker = pod.spec.containers.find((c) => c.name === "worker");
  const coordinator = coord.spec.template.spec.containers.find((c) => c.name === "coordinator");
  if (!worker || !coordinator) {
    fail(where, "containers 'worker' and 'coordinator' are required");
    return;
  }
  const workerPort = worker.ports?.[0]?.containerPort;
  const coordPort = coordinator.ports?.[0]?.containerPort;

  // Workers: headless Service with stable names, probes, threads = CPU limit.
  const svc = byKind("Service").find((s) => s.metadata.name === sts.spec.serviceName);
  if (!svc || svc.spec.clusterIP !== "None") {
    fail(where, `serviceName ${sts.spec.serviceName} must be a headless Service (clusterIP: None)`);
  } else {
    if (!matches(svc.spec.selector, pod.metadata.labels)) fail(where, "headless Service does not select the workers");
    if (!svc.spec.publishNotReadyAddresses) fail(where, "headless Service needs publishNotReadyAddresses (names resolve while loading)");
    if (!svc.spec.ports?.some((p) => p.port === workerPort)) fail(where, `headless Service lacks port ${workerPort}`);
  }
  checkProbes(worker, workerPort, where);
  checkProbes(coordinator, coordPort, where);
  const limits = worker.resources?.limits ?? {};
  const requests = worker.resources?.requests ?? {};
  const cpu = cpus(limits.cpu);
  if (cpu === undefined || !Number.isInteger(cpu)) fail(where, `worker CPU limit must be whole CPUs, not ${limits.cpu}`);
  if (!limits.memory) fail(where, "worker needs a memory limit");
  if (cpus(requests.cpu) !== cpu || requests.memory !== limits.memory) {
    fail(where, "worker requests must equal its limits (Guaranteed QoS)");
  }
  const threads = envValue(worker, "SHARDLM_THREADS");
  if (threads?.resourceFieldRef?.resource !== "limits.cpu" || String(threads.resourceFieldRef.divisor ?? "1") !== "1") {
    fail(where, "SHARDLM_THREADS (--threads) must come from limits.cpu (resourceFieldRef, divisor 1)");
  }
  const model = envValue(worker, "SHARDLM_MODEL");
  if (model !== envValue(coordinator, "SHARDLM_MODEL")) {
    fail(where, `workers serve ${model} but the coordinator reads ${envValue(coordinator, "SHARDLM_MODEL")}`);
  }
  // A model URL: each pod fetches into its cache, which must be a writable
  // volume (the root filesystem is read-only), not a shared claim.
  if (/^(https?|hf):\/\//.test(String(model))) {
    const cacheDir = envValue(worker, "SHARDLM_MODEL_CACHE_DIR");
    const coordCache = (coordinator.args ?? []).find((a) => a.startsWith("--model-cache-dir="))?.split("=")[1];
    for (const [owner, c, dir] of [["worker", worker, cacheDir], ["coordinator", coordinator, coordCache]]) {
      const spec = owner === "worker" ? pod.spec : coord.spec.template.spec;
      const mount = (c.volumeMounts ?? []).find((m) => dir !== undefined && m.mountPath === dir);
      const volume = (spec.volumes ?? []).find((v) => v.name === mount?.name);
      if (!mount || mount.readOnly) fail(where, `${owner}: a model URL needs its cache dir (${dir}) on a writable volume mount`);
      else if (!volume?.emptyDir && !volume?.hostPath && !volume?.ephemeral) {
        fail(where, `${owner}: the model cache volume '${mount.name}' should be an emptyDir, hostPath or ephemeral volume`);
      }
    }
  }

  // The coordinator: one process (sequence ids are per process), known flags.
  if (coord.spec.replicas !== 1 || coord.spec.strategy?.type !== "Recreate") {
    fail(where, "the coordinator must be 1 replica with strategy Recreate (workers key KV by per-process sequence ids)");
  }
  const coordArgs = [...(coordinator.command ?? []).slice(1), ...(coordinator.args ?? [])];
  checkFlags(coordArgs, COORDINATOR_FLAGS, where);
  checkSecurity(coordArgs, "coordinator", [["--tls-cert", "--tls-key"], ["--worker-tls-ca"]], where);

  // Every ConfigMap and PVC a pod mounts is part of the output; Secrets may be
  // created outside kustomize but must then be optional.
  for (const [owner, spec] of [["worker", pod.spec], ["coordinator", coord.spec.template.spec]]) {
    for (const v of spec.volumes ?? []) {
      if (v.configMap && !objects.some((o) => o.kind === "ConfigMap" && o.metadata.name === v.configMap.name)) {
        fail(where, `${owner} mounts ConfigMap ${v.configMap.name}, which is not rendered`);
      }
      if (v.persistentVolumeClaim && !objects.some((o) => o.kind === "PersistentVolumeClaim" && o.metadata.name === v.persistentVolumeClaim.claimName)) {
        fail(where, `${owner} mounts PVC ${v.persistentVolumeClaim.claimName}, which is not rendered`);
      }
      if (v.secret && !v.secret.optional && !objects.some((o) => o.kind === "Secret" && o.metadata.name === v.secret.secretName)) {
        fail(where, `${owner} mounts Secret ${v.secret.secretName}: not rendered and not optional`);
      }
    }
  }

  // Layout: ordinals 0..replicas-1, ranges contiguous from layer 0.
  const layoutVolume = (pod.spec.volumes ?? []).find((v) => v.name === "layout");
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === layoutVolume?.configMap?.name);
  if (!cm?.data?.layout || !cm.data["worker-entrypoint.sh"]) {
    fail(where, "the worker's 'layout' volume must be a ConfigMap with 'layout' and 'worker-entrypoint.sh'");
    return;
  }
  const layout = parseLayout(cm.data.layout, where);
  for (let i = 0; i < Math.max(sts.spec.replicas, layout.size); ++i) {
    if (!layout.has(i) || i >= sts.spec.replicas) {
      fail(where, `StatefulSet replicas (${sts.spec.replicas}) and layout ordinals (${[...layout.keys()]}) differ`);
      break;
    }
  }
  const ranges = [...new Map([...layout.values()].map((r) => [r.text, r])).values()].sort((a, b) => a.first - b.first);
  let next = 0;
  for (const r of ranges) {
    if (r.first !== next) fail(where, `layout ranges are not contiguous: ${r.text} after layer ${next}`);
    next = r.last;
  }

  // The coordinator's --workers: the StatefulSet's DNS names, every pod of
  // the layout once (pods of the same range are replicas: the coordinator
  // spreads sequences over them and fails over between them).
  const list = String(envValue(coordinator, "SHARDLM_WORKERS") ?? "").split(",");
  const nameRe = new RegExp(`^${sts.metadata.name}-(\\d+)\\.${sts.spec.serviceName}(\\.[a-z0-9.-]+)?:(\\d+)$`);
  const listed = new Set();
  for (const address of list) {
    const m = nameRe.exec(address);
    if (!m) fail(where, `worker address '${address}' is not <pod>.${sts.spec.serviceName}:${workerPort}`);
    else if (Number(m[3]) !== workerPort) fail(where, `worker address '${address}' has the wrong port`);
    else if (!layout.has(Number(m[1]))) fail(where, `worker address '${address}' names no pod of the layout`);
    else if (listed.has(Number(m[1]))) fail(where, `worker address '${address}' is listed twice`);
    else listed.add(Number(m[1]));
  }
  for (const ordinal of layout.keys()) {
    if (!listed.has(ordinal)) fail(where, `pod ${ordinal} of the layout is missing from the coordinator's --workers`);
  }

  // A voluntary disruption may take down at most (fewest replicas of a range - 1) pods.
  const copies = Math.min(...ranges.map((r) => [...layout.values()].filter((x) => x.text === r.text).length));
  for (const p of byKind("PodDisruptionBudget").filter((x) => matches(x.spec.selector?.matchLabels, pod.metadata.labels))) {
    if (p.spec.maxUnavailable === undefined || typeof p.spec.maxUnavailable !== "number" || p.spec.maxUnavailable > copies - 1) {
      fail(where, `PodDisruptionBudget ${p.metadata.name}: maxUnavailable must be a number <= ${copies - 1} (a range has ${copies} cop${copies === 1 ? "y" : "ies"})`);
    }
  }

  // PodDisruptionBudget and NetworkPolicy select the workers.
  if (!byKind("PodDisruptionBudget").some((p) => matches(p.spec.selector?.matchLabels, pod.metadata.labels))) {
    fail(where, "no PodDisruptionBudget selects the workers");
  }
  const coordLabels = coord.spec.template.metadata.labels;
  const policies = byKind("NetworkPolicy").filter((p) => matches(p.spec.podSelector?.matchLabels, pod.metadata.labels));
  if (policies.length === 0) fail(where, "no NetworkPolicy selects the workers");
  for (const p of policies) {
    if (!(p.spec.policyTypes ?? []).includes("Ingress")) fail(where, `NetworkPolicy ${p.metadata.name} does not restrict ingress`);
    for (const rule of p.spec.ingress ?? []) {
      const peers = rule.from ?? [];
      // The coordinator, and the workers themselves (--topology chain: each
      // calls the next stage), are the only peers allowed.
      if (peers.length === 0 || peers.some((f) => f.ipBlock || f.namespaceSelector ||
          (!matches(f.podSelector?.matchLabels, coordLabels) && !matches(f.podSelector?.matchLabels, pod.metadata.labels)))) {
        fail(where, `NetworkPolicy ${p.metadata.name} lets more than the coordinator and the workers reach the workers`);
      }
    }
  }

  // The entrypoint, run for every ordinal (and one past the last, which must fail).
  const dir = mkdtempSync(join(tmpdir(), "shardlm-k8s-"));
  try {
    writeFileSync(join(dir, "layout"), cm.data.layout);
    writeFileSync(join(dir, "entrypoint.sh"), cm.data["worker-entrypoint.sh"]);
    const env = { SHARDLM_LAYOUT: join(dir, "layout"), SHARDLM_THREADS: String(cpu) };
    for (const e of worker.env ?? []) if (e.value !== undefined && e.name !== "SHARDLM_LAYOUT") env[e.name] = e.value;
    for (let i = 0; i <= sts.spec.replicas; ++i) {
      const r = dryRunEntrypoint(dir, join(dir, "entrypoint.sh"), `${sts.metadata.name}-${i}`, env);
      if (i === sts.spec.replicas) {
        if (r.status === 0) fail(where, `entrypoint started ordinal ${i}, which the layout does not have`);
        continue;
      }
      const arg = (flag) => r.args[r.args.indexOf(flag) + 1];
      if (r.status !== 0) fail(where, `entrypoint for ordinal ${i} failed: ${r.stderr.trim()}`);
      else {
        checkFlags(r.args, WORKER_FLAGS, `${where} (entrypoint)`);
        checkSecurity(r.args, `worker ordinal ${i}`, [["--tls-cert", "--tls-key", "--tls-ca"]], where);
        if (arg("--layers") !== layout.get(i)?.text) fail(where, `ordinal ${i} started with --layers ${arg("--layers")}`);
        if (arg("--threads") !== String(cpu)) fail(where, `ordinal ${i} started with --threads ${arg("--threads")}`);
        if (arg("--listen") !== `0.0.0.0:${workerPort}`) fail(where, `ordinal ${i} listens on ${arg("--listen")}`);
        if (arg("--model") !== model) fail(where, `ordinal ${i} serves ${arg("--model")}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const argv = process.argv.slice(2);
const schemaOnly = argv.includes("--schema-only");
const files = argv.filter((a) => a !== "--schema-only");
if (files.length === 0) {
  console.error("usage: node validate.mjs [--schema-only] FILE.yaml...");
  process.exit(2);
}
for (const file of files) {
  const objects = [];
  for (const d of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (d.errors.length > 0) fail(basename(file), `YAML: ${d.errors[0].message}`);
    const obj = d.toJS();
    if (obj !== null) objects.push(obj);
  }
  for (const [i, obj] of objects.entries()) await schemaCheck(obj, `${basename(file)}[${i}]`);
  if (!schemaOnly) shardlmCheck(objects, basename(file));
  console.log(`${basename(file)}: ${objects.length} objects checked`);
}
for (const p of problems) console.error(`INVALID ${p}`);
process.exit(problems.length > 0 ? 1 : 0);
