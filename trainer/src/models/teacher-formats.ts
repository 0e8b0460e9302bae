// Which loader a teacher goes through: tfjs LayersModel, ONNX (ONNX Runtime) or TensorFlow SavedModel (native
// TensorFlow), from `teacher.format` or, when unset, from the path. The loaders take a local path or an http(s)
// URL: remote storage is resolved to a local path before this point.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import type { TeacherFormat, TeacherSpec } from "../../../api/v1alpha1/index.ts";
import type { Network } from "../contracts.ts";
import { DataError } from "../data/errors.ts";
import { loadOnnxTeacher } from "./onnx/teacher.ts";
import { loadSavedModelTeacher } from "./savedmodel.ts";
import { loadTeacher } from "./teacher.ts";

export type TeacherSource = Partial<
  Pick<TeacherSpec, "format" | "featureLayer" | "inputName" | "outputName" | "inputLayout" | "signature">
> & { model: string };

/** `format` when given; else `*.onnx` is onnx, a directory holding saved_model.pb savedmodel, anything else tfjs. */
export function teacherFormatOf(path: string, format?: TeacherFormat): TeacherFormat {
  if (format) return format;
  const plain = path.replace(/[?#].*$/, "");
  if (/\.onnx$/i.test(plain)) return "onnx";
  if (/saved_model\.pb$/i.test(plain)) return "savedmodel";
  const isDir = !/^https?:\/\//i.test(path) && statSync(path, { throwIfNoEntry: false })?.isDirectory();
  if (isDir && existsSync(join(path, "saved_model.pb"))) return "savedmodel";
  return "tfjs";
}

/** The teacher of `source` as a frozen Network over data of `inputShape` ([h, w, c]). */
export async function loadTeacherOfAnyFormat(
  source: TeacherSource,
  inputShape: number[],
  warn?: (message: string) => void,
): Promise<Network> {
  const format = teacherFormatOf(source.model, source.format);
  switch (format) {
    case "onnx":
      return loadOnnxTeacher(source.model, inputShape, {
        inputName: source.inputName,
        outputName: source.outputName,
        featureName: source.featureLayer,
        inputLayout: source.inputLayout,
        ...(warn ? { warn } : {}),
      });
    case "savedmodel":
      return loadSavedModelTeacher(source.model.replace(/\/?saved_model\.pb$/i, "") || ".", inputShape, {
        signature: source.signature,
        outputName: source.outputName,
        featureName: source.featureLayer,
      });
    case "tfjs":
      if (source.inputName !== undefined || source.outputName !== undefined)
        throw new DataError(
          source.model,
          "teacher.inputName/outputName apply to onnx and savedmodel teachers; a tfjs model's first output is the logits",
        );
      return loadTeacher(source.model, source.featureLayer, inputShape);
  }
}
