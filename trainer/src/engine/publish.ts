// Publishing the student in the formats the spec asks for (output.formats): the tfjs LayersModel (student/) and
// the ONNX model (student.onnx). An ONNX export is published only after its parity check in ONNX Runtime on the
// test split passed; a failed check is an error in the log and summary.json (the tfjs model is written then,
// whatever the formats say), an unsupported layer a warning. The run succeeds either way.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { StudentFormat } from "../../../api/v1alpha1/index.ts";
import type { Network, Split } from "../contracts.ts";
import type { Normalization } from "../data/index.ts";
import { saveNetwork } from "../models/index.ts";
import { exportOnnx, UnsupportedLayerError } from "../models/onnx/export.ts";
import { checkParity, type ParityReport } from "../models/onnx/verify.ts";
import type { Logger } from "./telemetry.ts";

export const ONNX_STUDENT_FILE = "student.onnx";

export interface OnnxExportSummary {
  status: "written" | "unsupported-layer" | "parity-failed" | "not-requested";
  path?: string;
  parity?: ParityReport;
  message?: string;
}

export interface PublishedStudent {
  /** The tfjs model's directory (written unless only onnx was asked for and it was published). */
  tfjsPath?: string;
  onnx: OnnxExportSummary;
  /** The ONNX bytes that passed the check (the compression report times them). */
  onnxBytes?: Uint8Array;
}

function writeAtomic(file: string, data: Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

async function exportChecked(
  network: Network,
  normalization: Normalization,
  test: Split,
  log: Logger,
): Promise<{ summary: OnnxExportSummary; bytes?: Uint8Array }> {
  let bytes: Uint8Array;
  try {
    bytes = exportOnnx(network.model, {
      inputNormalization: normalization,
      producerVersion: tf.version.tfjs,
    });
  } catch (err) {
    if (!(err instanceof UnsupportedLayerError)) throw err;
    log.warn(`ONNX export skipped: ${err.message}; the student is published as tfjs only`);
    return { summary: { status: "unsupported-layer", message: err.message } };
  }
  const parity = await checkParity(bytes, network, test);
  const figures =
    `max |logit difference| ${parity.maxAbsDiff.toExponential(2)} over ${parity.samples} test samples ` +
    `(tolerance ${parity.tolerance.atol} + ${parity.tolerance.rtol} x |logit|; ${parity.outsideTolerance} outside), ` +
    `top-1 ${(parity.onnxAccuracy * 100).toFixed(2)}% (tfjs ${(parity.tfjsAccuracy * 100).toFixed(2)}%)`;
  if (!parity.passed) {
    const message = `ONNX EXPORT FAILED its parity check in ONNX Runtime: ${figures}; student.onnx not written, the tfjs model is`;
    log.warn(message);
    return { summary: { status: "parity-failed", parity, message } };
  }
  log.info(`ONNX export verified in ONNX Runtime: ${figures}`);
  return { summary: { status: "written", parity }, bytes };
}

/** Writes the student in `formats` under `outputPath`; see the file comment for what happens on failure. */
export async function publishStudent(
  network: Network,
  normalization: Normalization,
  test: Split,
  outputPath: string,
  formats: readonly StudentFormat[],
  log: Logger,
): Promise<PublishedStudent> {
  let onnx: OnnxExportSummary = { status: "not-requested" };
  let onnxBytes: Uint8Array | undefined;
  if (formats.includes("onnx")) {
    const result = await exportChecked(network, normalization, test, log);
    onnx = result.summary;
    if (result.bytes) {
      mkdirSync(outputPath, { recursive: true });
      onnx.path = join(outputPath, ONNX_STUDENT_FILE);
      writeAtomic(onnx.path, result.bytes);
      onnxBytes = result.bytes;
    }
  }
  const needTfjs = formats.includes("tfjs") || onnx.status !== "written";
  const tfjsPath = needTfjs ? join(outputPath, "student") : undefined;
  if (tfjsPath) await saveNetwork({ ...network, inputNormalization: normalization }, tfjsPath);
  return { tfjsPath, onnx, onnxBytes };
}
