// Every class of spec issue 10 point 2 found the CRD accepting and the apiserver refusing as a child, one row
// each: the unit tests check zod and the CRD's rules, the reconciler test the resulting status, and the cluster
// test applies them to the real apiserver.
/**
 * Where a class is refused: "crd" at admission (CEL/OpenAPI), "operator" when it loads the job (zod; the job
 * ends Failed/InvalidSpec): quantities (typeless in the CRD so numbers pass) and the ConfigMap size.
 */
export type RefusedBy = "crd" | "operator";

/** [class, spec, the field the error must name, who refuses it]. */
export const INVALID_SPECS: [string, unknown, string, RefusedBy][] = [
  [
    "a cpu request that is no quantity",
    { runtime: { resources: { requests: { cpu: "lots" } } } },
    "spec.runtime.resources.requests.cpu",
    "operator",
  ],
  [
    "a negative memory limit",
    { runtime: { resources: { limits: { memory: "-1Gi" } } } },
    "spec.runtime.resources.limits.memory",
    "operator",
  ],
  [
    "a negative number for cpu",
    { runtime: { resources: { limits: { cpu: -0.5 } } } },
    "spec.runtime.resources.limits.cpu",
    "operator",
  ],
  [
    "a nodeSelector key with a space",
    { runtime: { nodeSelector: { "gpu type": "a100" } } },
    "spec.runtime.nodeSelector",
    "crd",
  ],
  [
    "a nodeSelector value over 63 characters",
    { runtime: { nodeSelector: { gpu: "a".repeat(64) } } },
    "spec.runtime.nodeSelector.gpu",
    "crd",
  ],
  [
    "a toleration key with two slashes",
    { runtime: { tolerations: [{ key: "a/b/c", operator: "Exists" }] } },
    "spec.runtime.tolerations.0.key",
    "crd",
  ],
  [
    "a toleration value that is no label value",
    { runtime: { tolerations: [{ key: "gpu", value: "a b" }] } },
    "spec.runtime.tolerations.0.value",
    "crd",
  ],
  [
    "a toleration with Exists and a value",
    { runtime: { tolerations: [{ key: "gpu", operator: "Exists", value: "x" }] } },
    "spec.runtime.tolerations.0.value",
    "crd",
  ],
  [
    "a toleration without key and not Exists",
    { runtime: { tolerations: [{ value: "x" }] } },
    "spec.runtime.tolerations.0.operator",
    "crd",
  ],
  [
    "tolerationSeconds without NoExecute",
    { runtime: { tolerations: [{ key: "gpu", operator: "Exists", tolerationSeconds: 5 }] } },
    "spec.runtime.tolerations.0.effect",
    "crd",
  ],
  [
    "a pod label key with a bad prefix",
    { runtime: { podLabels: { "Team_A/x": "y" } } },
    "spec.runtime.podLabels",
    "crd",
  ],
  [
    "a pod label value with a slash",
    { runtime: { podLabels: { team: "a/b" } } },
    "spec.runtime.podLabels.team",
    "crd",
  ],
  [
    "a pod annotation key with a space",
    { runtime: { podAnnotations: { "my note": "x" } } },
    "spec.runtime.podAnnotations",
    "crd",
  ],
  [
    "an env name with '='",
    { runtime: { env: [{ name: "A=B", value: "1" }] } },
    "spec.runtime.env.0.name",
    "crd",
  ],
  [
    "an env name used twice",
    {
      runtime: {
        env: [
          { name: "A", value: "1" },
          { name: "A", value: "2" },
        ],
      },
    },
    "spec.runtime.env",
    "crd",
  ],
  [
    "an env name of the operator's own",
    { runtime: { env: [{ name: "MOKD_CONFIG", value: "/tmp/x" }] } },
    "spec.runtime.env",
    "crd",
  ],
  [
    "an env var with both value and valueFrom",
    { runtime: { env: [{ name: "A", value: "1", valueFrom: { secretKeyRef: { name: "s", key: "k" } } }] } },
    "spec.runtime.env.0.value",
    "crd",
  ],
  [
    "an env valueFrom with both a Secret and a ConfigMap key",
    {
      runtime: {
        env: [
          {
            name: "A",
            valueFrom: { secretKeyRef: { name: "s", key: "k" }, configMapKeyRef: { name: "c", key: "k" } },
          },
        ],
      },
    },
    "spec.runtime.env.0.valueFrom",
    "crd",
  ],
  [
    "AWS credentials in env beside storage.credentialsSecret",
    {
      storage: { credentialsSecret: "s3-credentials" },
      runtime: { env: [{ name: "AWS_ACCESS_KEY_ID", value: "AKIA..." }] },
    },
    "spec.runtime.env",
    "crd",
  ],
  ["an s3 URI with an upper-case bucket", { data: { path: "s3://Datasets/mnist" } }, "spec.data.path", "crd"],
  ["an output uri that is no s3:// prefix", { output: { uri: "/results" } }, "spec.output.uri", "crd"],
  [
    "a sha256 that is no hex digest",
    { teacher: { model: "https://example.org/model.json", sha256: "abc" } },
    "spec.teacher.sha256",
    "crd",
  ],
  [
    "a subPath with '..'",
    { runtime: { volumes: { data: { claimName: "data", subPath: "a/../../etc" } } } },
    "spec.runtime.volumes.data.subPath",
    "crd",
  ],
  [
    "an absolute subPath",
    { runtime: { volumes: { output: { claimName: "out", subPath: "/etc" } } } },
    "spec.runtime.volumes.output.subPath",
    "crd",
  ],
  [
    "a claimName that is no object name",
    { runtime: { volumes: { data: { claimName: "Data_1" } } } },
    "spec.runtime.volumes.data.claimName",
    "crd",
  ],
  [
    "a priorityClassName that is no object name",
    { runtime: { priorityClassName: "High Prio" } },
    "spec.runtime.priorityClassName",
    "crd",
  ],
  [
    "an image with trailing whitespace",
    { runtime: { image: "ghcr.io/mokd/trainer:0.1.0 " } },
    "spec.runtime.image",
    "crd",
  ],
  ["a queueName that is no label value", { queueName: "team a" }, "spec.queueName", "crd"],
  [
    "a spec too large for its ConfigMap",
    { runtime: { env: [{ name: "BIG", value: "x".repeat(1100 * 1024) }] } },
    "spec.runtime",
    "operator",
  ],
];
