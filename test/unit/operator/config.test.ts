import { describe, expect, it } from "vitest";
import {
  loadConfig,
  OperatorConfigError,
  resourceDefaultsOf,
  watchedNamespaces,
} from "../../../operator/src/config.ts";

describe("operator config", () => {
  it("has defaults that need no flags", () => {
    expect(loadConfig([], {})).toMatchObject({
      port: 8080,
      leaderElect: true,
      leaseName: "mokd-operator",
      leaseNamespace: "default",
      concurrency: 8,
      logLevel: "info",
      progressInterval: 10,
    });
  });

  it("reads flags in both forms, and flags win over the environment", () => {
    const c = loadConfig(["--namespace=team-a", "--concurrency", "3", "--no-leader-elect", "--port=0"], {
      MOKD_OPERATOR_CONCURRENCY: "5",
      MOKD_OPERATOR_LOG_LEVEL: "debug",
    });
    expect(c).toMatchObject({
      namespace: "team-a",
      concurrency: 3,
      leaderElect: false,
      port: 0,
      logLevel: "debug",
    });
    expect(c.leaseNamespace).toBe("team-a");
  });

  it("takes the lease namespace from POD_NAMESPACE when not in single-namespace mode", () => {
    expect(loadConfig([], { POD_NAMESPACE: "mokd-system" }).leaseNamespace).toBe("mokd-system");
  });

  it("names the bad setting, with its flag and variable", () => {
    expect(() => loadConfig(["--progress-interval=60"], {})).toThrow(
      /--progress-interval \(MOKD_OPERATOR_PROGRESS_INTERVAL\)/,
    );
    expect(() => loadConfig([], { MOKD_OPERATOR_LEADER_ELECT: "maybe" })).toThrow(OperatorConfigError);
    expect(() => loadConfig(["--bogus"], {})).toThrow(/unknown argument --bogus/);
  });

  it("takes trainer resource defaults, empty for none, and refuses a non-quantity", () => {
    const c = loadConfig(["--trainer-cpu-limit=", "--trainer-memory-request=1Gi"], {});
    expect(resourceDefaultsOf(c)).toEqual({
      requests: { cpu: "1", memory: "1Gi" },
      limits: { cpu: undefined, memory: "8Gi" },
    });
    expect(() => loadConfig(["--trainer-cpu-request=lots"], {})).toThrow(/--trainer-cpu-request/);
  });

  it("watches a list of namespaces (with --namespace, both), or all when neither is set", () => {
    expect(watchedNamespaces(loadConfig([], {}))).toEqual([]);
    expect(watchedNamespaces(loadConfig(["--namespace=team-a"], {}))).toEqual(["team-a"]);
    const listed = loadConfig(["--namespace=team-a"], { MOKD_OPERATOR_NAMESPACES: "team-b, team-a,team-c" });
    expect(watchedNamespaces(listed)).toEqual(["team-a", "team-b", "team-c"]);
    expect(() => loadConfig(["--namespaces=team-a,Team_B"], {})).toThrow(
      /--namespaces \(MOKD_OPERATOR_NAMESPACES\): must be comma-separated namespace names/,
    );
  });
});
