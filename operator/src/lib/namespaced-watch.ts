// Several watched namespaces behind one cache, as controller-runtime's multi-namespace cache
// (cache.Options.DefaultNamespaces): one informer per namespace, and reads that go to the namespace's own.
//
// Why one informer per namespace and not one cluster-wide informer filtered: with a list of namespaces the
// operator holds a Role in each of them and no ClusterRole, so a cluster-wide list or watch is forbidden to it;
// and a cluster-wide watch would stream (and decode) every namespace's pods and events on a big cluster only to
// drop most of them. N watches cost N connections; the list is meant for a handful of team namespaces.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ResourceWatch } from "./informer.ts";

/**
 * One ResourceWatch over `namespaces` (empty: all namespaces, one cluster-wide watch), each made by `watch`
 * (given the namespace, or undefined for all of them).
 */
export function watchNamespaces<T extends KubernetesObject>(
  namespaces: readonly string[],
  watch: (namespace: string | undefined) => ResourceWatch<T>,
): ResourceWatch<T> {
  if (namespaces.length === 0) return watch(undefined);
  if (namespaces.length === 1) return watch(namespaces[0]);
  return new NamespacedWatches(new Map(namespaces.map((ns) => [ns, watch(ns)])));
}

class NamespacedWatches<T extends KubernetesObject> implements ResourceWatch<T> {
  readonly #byNamespace: Map<string, ResourceWatch<T>>;
  readonly #all: ResourceWatch<T>[];

  constructor(byNamespace: Map<string, ResourceWatch<T>>) {
    this.#byNamespace = byNamespace;
    this.#all = [...byNamespace.values()];
  }

  async start(): Promise<void> {
    await Promise.all(this.#all.map((w) => w.start()));
  }

  stop(): void {
    for (const w of this.#all) w.stop();
  }

  list(): T[] {
    return this.#all.flatMap((w) => w.list());
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return namespace === undefined ? undefined : this.#byNamespace.get(namespace)?.get(namespace, name);
  }

  byIndex(value: string): T[] {
    return this.#all.flatMap((w) => w.byIndex(value));
  }

  hasSynced(): boolean {
    return this.#all.every((w) => w.hasSynced());
  }

  /** The longest failure among the namespaces: one stale namespace is a stale cache. */
  failingForMs(): number {
    return Math.max(0, ...this.#all.map((w) => w.failingForMs()));
  }

  lastError(): unknown {
    return this.#longestFailing()?.lastError();
  }

  #longestFailing(): ResourceWatch<T> | undefined {
    const failing = this.#all.filter((w) => w.failingForMs() > 0);
    return failing.sort((a, b) => b.failingForMs() - a.failingForMs())[0];
  }
}
