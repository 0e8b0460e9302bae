// One copy of each repeated string in the informer caches: JSON.parse gives every string value of every object
// its own allocation, so 10,000 pods carry 10,000 copies of the same namespace, label values,
// node name, condition reasons and the scheduler's "0/4 nodes are available..." message. Measured on the
// scale bench's objects, sharing them cuts a cached DistillationJob + Job + pod + ConfigMap from ~7.5 to
// ~5 KiB of heap.
//
// Strings under UNIQUE_KEYS (names, UIDs, resource versions, timestamps) never repeat and are left alone, so
// they do not fill the pool; when the pool is full anyway it starts over (a bounded memory, at worst a later
// object shares with fewer others).

/** Keys whose values are (nearly) unique per object: not worth a pool entry. */
const UNIQUE_KEYS: ReadonlySet<string> = new Set([
  "name",
  "generateName",
  "uid",
  "resourceVersion",
  "creationTimestamp",
  "deletionTimestamp",
  "lastTransitionTime",
  "lastProbeTime",
  "lastUpdateTime",
  "startTime",
  "completionTime",
  "startedAt",
  "finishedAt",
  "podIP",
  "containerID",
  "imageID",
]);

export class StringPool {
  readonly #pool = new Map<string, string>();
  readonly #maxEntries: number;
  readonly #maxLength: number;

  /**
   * @param maxEntries strings kept before the pool starts over
   * @param maxLength longer strings are left alone (a termination message is one object's own)
   */
  constructor(maxEntries = 20_000, maxLength = 512) {
    this.#maxEntries = maxEntries;
    this.#maxLength = maxLength;
  }

  get size(): number {
    return this.#pool.size;
  }

  intern(value: string): string {
    if (value.length > this.#maxLength) return value;
    const shared = this.#pool.get(value);
    if (shared !== undefined) return shared;
    if (this.#pool.size >= this.#maxEntries) this.#pool.clear();
    this.#pool.set(value, value);
    return value;
  }

  /**
   * Replaces, in place, every string inside `value` by its pooled copy (object keys are interned by JSON.parse
   * already), except the values of UNIQUE_KEYS. For objects just parsed from the wire, owned by the caller.
   */
  internDeep<T>(value: T): T {
    this.#walk(value as unknown);
    return value;
  }

  #walk(value: unknown): void {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        if (typeof item === "string") value[i] = this.intern(item);
        else this.#walk(item);
      }
    } else if (value !== null && typeof value === "object") {
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        const item = record[key];
        if (typeof item === "string") {
          if (!UNIQUE_KEYS.has(key)) record[key] = this.intern(item);
        } else this.#walk(item);
      }
    }
  }
}
