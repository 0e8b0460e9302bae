// The parameters of a SavedModel teacher. Its weights live in TensorFlow, not in tfjs (the model runs inside a
// layer with no tfjs weights, so countParams() says 0): they are counted from saved_model.pb instead, as the
// shapes of the variables of its "serve" graph (VarHandleOp, or VariableV2 in TF1 graphs), read with the
// SavedModel protobuf messages tfjs-node itself uses for getMetaGraphsFromSavedModel.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

interface Dim {
  getSize(): number | string;
}
interface NodeDef {
  getOp(): string;
  getAttrMap(): { get(key: string): { getShape(): { getDimList(): Dim[] } | undefined } | undefined };
}
interface MetaGraph {
  getMetaInfoDef(): { getTagsList(): string[] } | undefined;
  getGraphDef(): { getNodeList(): NodeDef[] } | undefined;
}
interface Messages {
  SavedModel: { deserializeBinary(bytes: Uint8Array): { getMetaGraphsList(): MetaGraph[] } };
}

const VARIABLE_OPS = new Set(["VarHandleOp", "VariableV2", "Variable"]);

/**
 * Parameters of the SavedModel in `dir` (elements of every variable of its serve graph); undefined when the file
 * cannot be read that way or a variable's shape is not fully known. `nativePackage`: the loaded tfjs-node package.
 */
export function savedModelParameterCount(dir: string, nativePackage: string): number | undefined {
  try {
    const require = createRequire(import.meta.url);
    const messages = require(`${nativePackage}/dist/proto/api_pb.js`) as Messages;
    const saved = messages.SavedModel.deserializeBinary(readFileSync(join(dir, "saved_model.pb")));
    const graphs = saved.getMetaGraphsList();
    const serve =
      graphs.find((g) => g.getMetaInfoDef()?.getTagsList().includes("serve") ?? false) ?? graphs[0];
    let total = 0;
    for (const node of serve?.getGraphDef()?.getNodeList() ?? []) {
      if (!VARIABLE_OPS.has(node.getOp())) continue;
      const dims = node.getAttrMap().get("shape")?.getShape()?.getDimList();
      const sizes = (dims ?? []).map((d) => Number(d.getSize()));
      if (!dims || sizes.some((s) => !Number.isInteger(s) || s < 0)) return undefined;
      total += sizes.reduce((a, b) => a * b, 1);
    }
    return total > 0 ? total : undefined;
  } catch {
    return undefined;
  }
}
