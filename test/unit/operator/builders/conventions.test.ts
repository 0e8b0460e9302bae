// The child Job honours Kueue's own convention and the operator's pull secrets.
import { describe, expect, it } from "vitest";
import { buildJob, queueNameOf } from "../../../../operator/src/builders/job.ts";
import { loadConfig } from "../../../../operator/src/config.ts";
import { desiredJob } from "../../../../operator/src/controller/children.ts";
import { distillationJob } from "../../../fixtures/kube-objects.ts";

const QUEUE_LABEL = "kueue.x-k8s.io/queue-name";
const labelled = (spec: Parameters<typeof distillationJob>[0], queue: string) => {
  const dj = distillationJob(spec);
  return { ...dj, metadata: { ...dj.metadata, labels: { ...dj.metadata.labels, [QUEUE_LABEL]: queue } } };
};

describe("a kueue.x-k8s.io/queue-name label on the DistillationJob", () => {
  it("acts as spec.queueName: the child Job gets the label and starts suspended for Kueue", () => {
    const job = buildJob(labelled({}, "team-a"));
    expect(job.metadata?.labels?.[QUEUE_LABEL]).toBe("team-a");
    expect(job.spec?.suspend).toBe(true);
  });

  it("yields to spec.queueName, and an empty label is no queue", () => {
    expect(queueNameOf(labelled({ queueName: "from-spec" }, "from-label"))).toBe("from-spec");
    expect(queueNameOf(labelled({}, ""))).toBeUndefined();
    expect(buildJob(labelled({}, "")).spec?.suspend).toBe(false);
  });
});

describe("trainer image pull secrets", () => {
  it("merges the operator's (--trainer-image-pull-secrets) with the job's, once each", () => {
    const { trainerImagePullSecrets } = loadConfig(["--trainer-image-pull-secrets=regcred, mirror"], {});
    expect(trainerImagePullSecrets).toEqual(["regcred", "mirror"]);
    const job = buildJob(distillationJob({ runtime: { imagePullSecrets: ["mirror", "team"] } }), {
      trainerImagePullSecrets,
    });
    expect(job.spec!.template.spec!.imagePullSecrets).toEqual([
      { name: "regcred" },
      { name: "mirror" },
      { name: "team" },
    ]);
    expect(buildJob(distillationJob({})).spec!.template.spec!.imagePullSecrets).toBeUndefined();
  });

  it("reach the trainer pod through the reconciler's child options (the flag's whole path but the informers)", () => {
    const { trainerImagePullSecrets } = loadConfig(["--trainer-image-pull-secrets=regcred"], {});
    const job = desiredJob(distillationJob({}), { trainerImagePullSecrets });
    expect(job.spec!.template.spec!.imagePullSecrets).toEqual([{ name: "regcred" }]);
  });

  it("refuses a name that is no Secret name, naming the flag", () => {
    expect(() => loadConfig(["--trainer-image-pull-secrets=Bad_Name"], {})).toThrow(
      /--trainer-image-pull-secrets/,
    );
    expect(loadConfig([], { MOKD_OPERATOR_TRAINER_IMAGE_PULL_SECRETS: "a" }).trainerImagePullSecrets).toEqual(
      ["a"],
    );
  });
});
