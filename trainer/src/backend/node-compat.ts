// Node >= 23 removed util.isNullOrUndefined and util.isArray (deprecated since Node 4); tfjs-node 4.22's kernel
// backend (dist/nodejs_kernel_backend.js) still calls both, so without them every op throws
// "util_1.isNullOrUndefined is not a function". Defined on node:util (the object tfjs-node's require("util")
// returns) only by the native loader, right before it imports a native package: nothing else sees them.
import util from "node:util";

type LegacyUtil = typeof util & {
  isNullOrUndefined?: (value: unknown) => boolean;
  isArray?: (value: unknown) => boolean;
};

/** Adds the two removed functions when missing; a no-op on Node < 23 and when applied twice. */
export function installLegacyUtilShim(target: LegacyUtil = util as LegacyUtil): void {
  target.isNullOrUndefined ??= (value: unknown) => value === null || value === undefined;
  target.isArray ??= Array.isArray;
}
