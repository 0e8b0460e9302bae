// Hostile manifest files (issue 17 point 1), one row each, as a user hands them to `trainer validate`,
// `npm run job` and `kubectl apply`. The unit tests run them through zod (checkManifestFile) and the CLI; the
// cluster test (test/cluster/api/manifest-agreement.test.ts) through the real apiserver with
// `kubectl apply --dry-run=server`. All three must agree.

/**
 * What the apiserver does with the file: "refused" at admission, "admitted" (valid), or "operator" — admitted,
 * and the operator then fails the job with reason InvalidSpec naming the field (quantities: the CRD declares them
 * typeless so that numbers such as 0.5 pass, and CEL cannot see a typeless field; see k8s-formats.ts).
 */
export type Admission = "refused" | "admitted" | "operator";

export interface ManifestCase {
  name: string;
  text: string;
  admission: Admission;
  /** Fields (zod's dotted paths) the local check must name; empty for a valid file. */
  fields: string[];
  /** Something kubectl's error output must contain, when refused. */
  apiserverSays?: string;
}

const HEAD = "apiVersion: distillation.mokd.io/v1alpha1\nkind: DistillationJob\nmetadata:\n  name: hostile\n";
/** A manifest whose spec is `specYaml` (indented by two spaces under `spec:`). */
const job = (specYaml: string) => `${HEAD}spec:\n${specYaml.replace(/^/gm, "  ")}\n`;
const indent = (text: string) => text.replace(/^(?=.)/gm, "  ");

export const MANIFEST_CASES: ManifestCase[] = [
  { name: "a valid job", text: job("training: {epochs: 2}"), admission: "admitted", fields: [] },
  {
    name: "gpus -1",
    text: job("runtime: {gpus: -1}"),
    admission: "refused",
    fields: ["spec.runtime.gpus"],
    apiserverSays: "spec.runtime.gpus",
  },
  {
    name: "gpus 2 (the trainer uses one device)",
    text: job("runtime: {gpus: 2}"),
    admission: "refused",
    fields: ["spec.runtime.gpus"],
    apiserverSays: "spec.runtime.gpus",
  },
  {
    name: "a bad toleration (Exists with a value)",
    text: job("runtime:\n  tolerations: [{key: gpu, operator: Exists, value: x}]"),
    admission: "refused",
    fields: ["spec.runtime.tolerations.0.value"],
    apiserverSays: "spec.runtime.tolerations[0].value",
  },
  {
    name: "claimName Bad_Name",
    text: job("runtime:\n  volumes: {data: {claimName: Bad_Name}}"),
    admission: "refused",
    fields: ["spec.runtime.volumes.data.claimName"],
    apiserverSays: "spec.runtime.volumes.data.claimName",
  },
  {
    name: 'queueName "team a/queue"',
    text: job('queueName: "team a/queue"'),
    admission: "refused",
    fields: ["spec.queueName"],
    apiserverSays: "spec.queueName",
  },
  {
    name: "ttlSecondsAfterFinished -5",
    text: job("runPolicy: {ttlSecondsAfterFinished: -5}"),
    admission: "refused",
    fields: ["spec.runPolicy.ttlSecondsAfterFinished"],
    apiserverSays: "spec.runPolicy.ttlSecondsAfterFinished",
  },
  {
    name: "memory: lots",
    text: job("runtime:\n  resources: {limits: {memory: lots}}"),
    admission: "operator",
    fields: ["spec.runtime.resources.limits.memory"],
  },
  {
    name: "kind TrainJob",
    text: "apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata:\n  name: hostile\nspec: {}\n",
    admission: "refused",
    fields: ["kind", "apiVersion"],
    apiserverSays: "TrainJob",
  },
  {
    name: "kind DistillationJob under another apiVersion",
    text: HEAD.replace("v1alpha1", "v1") + "spec: {}\n",
    admission: "refused",
    fields: ["apiVersion"],
    apiserverSays: "distillation.mokd.io/v1",
  },
  {
    name: "an empty file",
    text: "# nothing here\n---\n",
    admission: "refused",
    fields: [""],
    apiserverSays: "no objects passed to apply",
  },
  {
    name: "a kind: List holding a valid job",
    text: `apiVersion: v1\nkind: List\nitems:\n- ${indent(job("training: {epochs: 2}")).trimStart()}`,
    admission: "admitted",
    fields: [],
  },
  {
    name: "a kind: List holding an invalid job",
    text: `apiVersion: v1\nkind: List\nitems:\n- ${indent(job("runtime: {gpus: -1}")).trimStart()}`,
    admission: "refused",
    fields: ["items.0.spec.runtime.gpus"],
    apiserverSays: "spec.runtime.gpus",
  },
  {
    name: "a spec mis-indented under metadata",
    text: `${HEAD}  spec:\n    training: {epochs: 2}\n`,
    admission: "refused",
    fields: ["metadata.spec", "spec"],
    apiserverSays: "spec",
  },
  {
    name: "a trailing ---",
    text: `${job("training: {epochs: 2}")}---\n`,
    admission: "admitted",
    fields: [],
  },
  {
    name: "a typo (trainig)",
    text: job("trainig: {epochs: 2}"),
    admission: "refused",
    fields: ["spec.trainig"],
    apiserverSays: 'unknown field "spec.trainig"',
  },
  {
    name: "a field error and a cross-field error together",
    text: job("runtime: {gpus: -1}\nobjectives: {distillation: {enabled: false}}\nstrategy: {name: mokd}"),
    admission: "refused",
    fields: ["spec.runtime.gpus", "spec.strategy.name"],
    apiserverSays: "spec.runtime.gpus",
  },
  {
    name: "an unquoted off (YAML 1.1: a boolean)",
    text: job("teacher: {outputCache: off}"),
    admission: "refused",
    fields: ["spec.teacher.outputCache"],
    apiserverSays: "spec.teacher.outputCache",
  },
  {
    name: "DKD's warm-up both as a fraction and in steps",
    text: job("objectives: {distillation: {loss: dkd, dkd: {warmupFraction: 0.1, warmupSteps: 100}}}"),
    admission: "refused",
    fields: ["spec.objectives.distillation.dkd.warmupSteps"],
    apiserverSays: "warmupFraction or warmupSteps, not both",
  },
  {
    name: "no metadata.name",
    text: "apiVersion: distillation.mokd.io/v1alpha1\nkind: DistillationJob\nspec: {}\n",
    admission: "refused",
    fields: ["metadata.name"],
    apiserverSays: "name",
  },
];
