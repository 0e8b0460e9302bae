// The chart's PodMonitor and ServiceMonitor, turned into the Prometheus scrape configs the Prometheus Operator
// would generate from them: Kubernetes service discovery (role pod / endpoints) with relabelling that keeps what
// their selectors and port names select. A test then scrapes what a user's Prometheus would, found the same way.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { CHART_DIR } from "../../../scripts/generate.ts";
import { binDir } from "../../bed/env.ts";

const run = promisify(execFile);

interface Monitor {
  kind: "PodMonitor" | "ServiceMonitor";
  metadata: { name: string; namespace: string };
  spec: {
    selector: { matchLabels: Record<string, string> };
    podMetricsEndpoints?: { port: string; path?: string; honorLabels?: boolean }[];
    endpoints?: { port: string; path?: string; honorLabels?: boolean }[];
  };
}

/** Prometheus' label-name sanitising of Kubernetes label keys (__meta_kubernetes_pod_label_<name>). */
const metaName = (key: string) => key.replace(/[^a-zA-Z0-9_]/g, "_");

export async function chartMonitors(release: string, namespace: string): Promise<Monitor[]> {
  // prettier-ignore
  const { stdout } = await run(join(binDir(), "helm"), [
    "template", release, CHART_DIR, "-n", namespace,
    "--set", "podMonitor.enabled=true", "--set", "serviceMonitor.enabled=true",
    "--show-only", "templates/podmonitor.yaml", "--show-only", "templates/servicemonitor.yaml",
  ]);
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Monitor | null)
    .filter((m): m is Monitor => m !== null);
}

/**
 * One scrape config per monitor endpoint, named `trainer` (PodMonitor) and `operator` (ServiceMonitor).
 * Discovery is limited to `namespaces` (the test's): the chart's PodMonitor selects any namespace, and the other
 * tests' kwok pods carry the same labels on addresses nothing listens on.
 */
export function scrapeConfigs(monitors: Monitor[], kubeconfig: string, namespaces: string[]): object[] {
  return monitors.flatMap((m) => {
    const pod = m.kind === "PodMonitor";
    const object = pod ? "pod" : "service";
    const keep = Object.entries(m.spec.selector.matchLabels).map(([k, v]) => ({
      source_labels: [
        `__meta_kubernetes_${object}_label_${metaName(k)}`,
        `__meta_kubernetes_${object}_labelpresent_${metaName(k)}`,
      ],
      regex: `(${v});true`,
      action: "keep",
    }));
    const endpoints = (pod ? m.spec.podMetricsEndpoints : m.spec.endpoints) ?? [];
    return endpoints.map((e) => ({
      job_name: pod ? "trainer" : "operator",
      metrics_path: e.path ?? "/metrics",
      honor_labels: e.honorLabels ?? false,
      kubernetes_sd_configs: [
        { role: pod ? "pod" : "endpoints", kubeconfig_file: kubeconfig, namespaces: { names: namespaces } },
      ],
      relabel_configs: [
        ...keep,
        pod
          ? { source_labels: ["__meta_kubernetes_pod_container_port_name"], regex: e.port, action: "keep" }
          : { source_labels: ["__meta_kubernetes_endpoint_port_name"], regex: e.port, action: "keep" },
        // As the Prometheus Operator does by default: finished pods are not scraped.
        ...(pod
          ? [{ source_labels: ["__meta_kubernetes_pod_phase"], regex: "(Failed|Succeeded)", action: "drop" }]
          : []),
        { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
        { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
      ],
    }));
  });
}
