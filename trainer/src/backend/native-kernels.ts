// Replacement kernels for the native tensorflow backend, where tfjs-node builds a kernel from several TF ops over
// full-size tensors and one or two TF ops compute the same. Registered for "tensorflow" only (the project's
// cpu/wasm kernels are in kernels.ts and never registered here).
// - Step (alpha 0; every ReLU's gradient is dy * step(x)): tfjs-node runs isNaN, greater, ones, fill, select and
//   select (three full-size temporaries); Sign(Relu(x)) gives the same 1 / 0 / NaN. Measured on the ResNet-style
//   probe (trainer/src/diagnostics/probe.ts, one thread): Step took 114 ms of a 1270 ms training step.
import * as tf from "@tensorflow/tfjs";

interface NativeBackend {
  executeSingleInput(name: string, input: tf.Tensor): tf.Tensor;
}

type KernelFunc = tf.KernelConfig["kernelFunc"];

function stepKernel(stock: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.Tensor;
    const alpha = (args.attrs as { alpha?: number } | undefined)?.alpha ?? 0;
    if (alpha !== 0 || x.dtype !== "float32") return stock(args);
    const backend = args.backend as unknown as NativeBackend;
    return tf.tidy(() => backend.executeSingleInput("Sign", backend.executeSingleInput("Relu", x)));
  };
}

let registered = false;

/** Registers the replacements for the tensorflow backend (once tfjs-node has registered its own). Idempotent. */
export function registerNativeKernels(): string[] {
  if (!registered) {
    const stock = tf.getKernel(tf.Step, "tensorflow")?.kernelFunc;
    if (!stock) throw new Error("tfjs-node registered no Step kernel");
    tf.unregisterKernel(tf.Step, "tensorflow");
    tf.registerKernel({ kernelName: tf.Step, backendName: "tensorflow", kernelFunc: stepKernel(stock) });
    registered = true;
  }
  return [tf.Step];
}
