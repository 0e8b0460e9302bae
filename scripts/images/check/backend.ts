// The last step of each trainer image build (`RUN --mount=type=bind,source=scripts/images/check,target=/mnt
// node /mnt/backend.ts <backend> <TensorFlow version>`, as the image's own user): the trainer's own backend
// selection must activate the expected native backend, the loaded library must report the pinned TensorFlow
// version, and an op and a gradient must run on it. Anything else fails the build, so an image can never ship
// silently on wasm. Nothing of this file stays in the image (a bind mount, for this RUN only).
//   usage: node backend.ts tensorflow|tensorflow-gpu <version> [app dir, default /app]
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

type Tf = typeof import("@tensorflow/tfjs");

const [choice, version, app = "/app"] = process.argv.slice(2);
if ((choice !== "tensorflow" && choice !== "tensorflow-gpu") || !version) {
  process.stderr.write("usage: backend.ts tensorflow|tensorflow-gpu <TensorFlow version> [app dir]\n");
  process.exit(2);
}

function fail(message: string): never {
  process.stderr.write(`check-backend: ${message}\n`);
  process.exit(1);
}

const backendModule = pathToFileURL(join(app, "trainer/src/backend/index.ts")).href;
const { selectBackend } = (await import(
  backendModule
)) as typeof import("../../../trainer/src/backend/index.ts");
// The trainer's tfjs instance: the same package the backend module resolved.
const tf = createRequire(join(app, "trainer/src/backend/index.ts"))("@tensorflow/tfjs") as Tf;

const selected = await selectBackend(choice).catch((error: unknown) => fail(String(error)));
if (tf.getBackend() !== "tensorflow") fail(`tf.getBackend() is ${tf.getBackend()}, expected tensorflow`);
const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
if (binding?.TF_Version !== version)
  fail(`the binding reports TensorFlow ${binding?.TF_Version}, expected ${version}`);
const x = tf.tensor2d([
  [1, 2],
  [3, 4],
]);
let sum: number | undefined;
let grad: Float32Array | Int32Array | Uint8Array;
try {
  sum = tf.matMul(x, x).sum().dataSync()[0];
  grad = tf
    .grad((t) => t.square().sum())(x)
    .dataSync();
} catch (error) {
  fail(`an op failed on ${choice}: ${error instanceof Error ? error.message : String(error)}`);
}
if (sum !== 54 || grad.join(",") !== "2,4,6,8")
  fail(`wrong results on ${choice}: matMul sum ${sum}, grad ${grad.join(",")}`);
process.stdout.write(
  `check-backend: ${selected.choice} -> tf.getBackend()=tensorflow, TensorFlow ${binding.TF_Version}, matMul and grad ok\n`,
);
