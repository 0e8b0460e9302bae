// Gradient kernels the cpu and wasm backends lack or run slowly, built from kernels they have (transpose, pad,
// (dilated) conv2d, reverse, slice). Registered for cpu and wasm only: the native tensorflow backend has fast
// kernels of its own and must keep them.
//
// - Conv2DBackpropFilter: wasm has none (conv nets cannot train); cpu's is a naive loop taking ~93% of a CNN step.
//   dW[r, s, ci, co] = sum_{b, i, j} xpad[b, i*st + r, j*st + s, ci] dy[b, i, j, co] is a valid conv of
//   x^T = [ci, H, W, b] (batch as channels) with dy^T = [oh, ow, b, co] as the filter, dilated by the stride.
//   On wasm, for 1-4 input channels (a first layer), an im2col matrix product instead (see
//   conv2dFilterGradientIm2col).
// - Conv2DBackpropInput (stride 1, wasm): wasm's is a plain loop. With stride 1, dx is a valid conv of dy,
//   padded by (filter - 1 - forward padding), with the filter flipped spatially and its channels swapped.
//   Other strides keep the stock kernel.
// - BatchMatMul with transposeA or transposeB (wasm): the stock kernel only runs XNNPACK when neither input is
//   transposed and falls back to a naive loop otherwise (measured: x^T dy for a 784x128 dense layer, batch 64,
//   ~6x slower than transposing first). Every dense backward uses such products (dW = x^T dy,
//   dx = dy W^T), so the replacement transposes the flagged inputs explicitly and multiplies untransposed.
// - MaxPoolGrad (cpu, wasm): both stock kernels are slow loops (wasm: the largest kernels of a small CNN's
//   step). The replacement is one JS pass: per output window, the first maximum in scan order (as the stock
//   kernels pick it) receives dy; overlapping windows accumulate.
import * as tf from "@tensorflow/tfjs";

type KernelFunc = tf.KernelConfig["kernelFunc"];
type Pad = "valid" | "same" | number | tf.backend_util.ExplicitPadding;
type Rounding = "floor" | "round" | "ceil" | undefined;

interface BackpropAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: "NHWC" | "NCHW";
  dimRoundingMode?: Rounding;
}
interface FilterAttrs extends BackpropAttrs {
  filterShape: [number, number, number, number];
}
interface InputAttrs extends BackpropAttrs {
  inputShape: [number, number, number, number];
}

const pair = (s: number | [number, number]): [number, number] => (typeof s === "number" ? [s, s] : s);

function convInfo(inShape: number[], filterShape: number[], a: BackpropAttrs): tf.backend_util.Conv2DInfo {
  if (a.dataFormat === "NCHW") throw new Error("conv gradient kernels: only NHWC is supported");
  return tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    1,
    a.pad as "same" | "valid",
    a.dimRoundingMode,
  );
}

/** dW of conv2d from x and dy, by a dilated convolution. */
export function conv2dFilterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, attrs: FilterAttrs): tf.Tensor4D {
  return tf.tidy(() => {
    const info = convInfo(x.shape, attrs.filterShape, attrs);
    const [fh, fw] = [info.filterHeight, info.filterWidth];
    const { top, left } = info.padInfo;
    const [sh, sw] = pair(attrs.strides);
    // Rows of the padded input that the forward conv reads: (out - 1) * stride + filter, starting at -top.
    const rows = (info.outHeight - 1) * sh + fh;
    const cols = (info.outWidth - 1) * sw + fw;
    const padded = tf.pad(x, [
      [0, 0],
      [top, Math.max(0, rows - top - x.shape[1])],
      [left, Math.max(0, cols - left - x.shape[2])],
      [0, 0],
    ]);
    const cropped = tf.slice(padded, [0, 0, 0, 0], [-1, rows, cols, -1]);
    const xT = tf.transpose(cropped, [3, 1, 2, 0]); // [ci, rows, cols, b]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [oh, ow, b, co]
    const out = tf.conv2d(xT, dyT, 1, "valid", "NHWC", [sh, sw]); // [ci, fh, fw, co]
    return tf.transpose(out, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

/** dx of a stride-1 conv2d from dy and the filter, by a convolution with the flipped filter. */
export function conv2dInputGradientStride1(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  attrs: InputAttrs,
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = convInfo(attrs.inputShape, filter.shape, attrs);
    const [fh, fw] = [info.filterHeight, info.filterWidth];
    const { top, bottom, left, right } = info.padInfo;
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]); // [fh, fw, co, ci]
    const padded = tf.pad(dy, [
      [0, 0],
      [fh - 1 - top, fh - 1 - bottom],
      [fw - 1 - left, fw - 1 - right],
      [0, 0],
    ]);
    return tf.conv2d(padded, flipped, 1, "valid");
  });
}

/** Below this many input channels the im2col filter gradient beats the dilated conv on wasm (measured). */
export const IM2COL_MAX_CHANNELS = 4;

/**
 * dW of conv2d as one matrix product, dW[(r, s, ci), co] = P^T[(r, s, ci), n] dy[n, co] over the n = (b, i, j)
 * output pixels, where P^T (the input patches, transposed) is written by one JS pass straight into wasm heap
 * memory. For a first layer (1-4 channels) the dilated conv runs a tiny-output conv with a huge filter:
 * measured on wasm, batch 64, 3x3 filters: 28x28x1->16 19.1 -> 4.8 ms CPU, 32x32x3->16 25.2 -> 14.6 ms; at 8 and
 * 16 channels it is no faster (the JS patch pass grows with the channels), so those keep the conv.
 */
export function conv2dFilterGradientIm2col(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  attrs: FilterAttrs,
  heap: WasmHeap,
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = convInfo(x.shape, attrs.filterShape, attrs);
    const { batchSize, outHeight, outWidth, filterHeight, filterWidth, inChannels } = info;
    const pixels = batchSize * outHeight * outWidth;
    const patches = tf
      .engine()
      .makeTensorFromTensorInfo(
        heap.makeOutput([filterHeight * filterWidth * inChannels, pixels], "float32"),
      );
    // Views after the allocation (growing the heap detaches earlier ones).
    writeTransposedPatches(heap.typedArrayFromHeap(x), info, heap.typedArrayFromHeap(patches));
    const dW = tf.matMul(patches as tf.Tensor2D, tf.reshape(dy, [pixels, info.outChannels]));
    return tf.reshape(dW, attrs.filterShape);
  });
}

/** P^T[(r, s, c), (b, i, j)] = x[b, i*sh + r - top, j*sw + s - left, c], 0 in the padding. */
function writeTransposedPatches(
  x: Float32Array<ArrayBufferLike>,
  info: tf.backend_util.Conv2DInfo,
  out: Float32Array<ArrayBufferLike>,
): void {
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const { top, left } = info.padInfo;
  let w = 0;
  for (let r = 0; r < filterHeight; r++)
    for (let s = 0; s < filterWidth; s++)
      for (let c = 0; c < C; c++)
        for (let b = 0; b < batchSize; b++)
          for (let i = 0; i < outHeight; i++) {
            const row = i * strideHeight + r - top;
            if (row < 0 || row >= inHeight) {
              out.fill(0, w, w + outWidth);
              w += outWidth;
              continue;
            }
            const base = (b * inHeight + row) * inWidth * C + c;
            for (let j = 0; j < outWidth; j++, w++) {
              const col = j * strideWidth + s - left;
              out[w] = col >= 0 && col < inWidth ? x[base + col * C]! : 0;
            }
          }
}

const filterKernel: KernelFunc = ({ inputs, attrs, backend }) => {
  const { x, dy } = inputs as unknown as { x: tf.Tensor4D; dy: tf.Tensor4D };
  const a = attrs as unknown as FilterAttrs;
  if (isWasmHeap(backend) && a.filterShape[2] <= IM2COL_MAX_CHANNELS)
    return conv2dFilterGradientIm2col(x, dy, a, backend);
  return conv2dFilterGradient(x, dy, a);
};

function inputKernel(stock: KernelFunc | undefined): KernelFunc {
  return (args) => {
    const a = args.attrs as unknown as InputAttrs;
    const [sh, sw] = pair(a.strides);
    if ((sh !== 1 || sw !== 1) && stock) return stock(args);
    const { dy, filter } = args.inputs as unknown as { dy: tf.Tensor4D; filter: tf.Tensor4D };
    if (sh !== 1 || sw !== 1) throw new Error("Conv2DBackpropInput: no stock kernel for strides > 1");
    return conv2dInputGradientStride1(dy, filter, a);
  };
}

/** Swaps the last two axes (the matrix axes of a batched matmul operand). */
function transposeMatrices(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  const n = perm.length;
  [perm[n - 2], perm[n - 1]] = [perm[n - 1]!, perm[n - 2]!];
  return tf.transpose(t, perm);
}

function matMulKernel(stock: KernelFunc): KernelFunc {
  return (args) => {
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return stock(args);
    const { a, b } = args.inputs as unknown as { a: tf.Tensor; b: tf.Tensor };
    return tf.tidy(() =>
      tf.matMul(transposeA ? transposeMatrices(a) : a, transposeB ? transposeMatrices(b) : b),
    );
  };
}

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: Rounding;
}

/**
 * dx of max pooling (NHWC) into `dx` (zero-filled): dy routed to the first maximum of each window (NaN never
 * wins, as in the stock kernels).
 */
export function maxPoolGradient(
  x: Float32Array<ArrayBufferLike>,
  dy: Float32Array<ArrayBufferLike>,
  info: tf.backend_util.Conv2DInfo,
  dx: Float32Array<ArrayBufferLike> = new Float32Array(x.length),
): Float32Array<ArrayBufferLike> {
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const { effectiveFilterHeight, effectiveFilterWidth } = info;
  const { top, left } = info.padInfo;
  const bases = new Int32Array(effectiveFilterHeight * effectiveFilterWidth); // window pixels in scan order
  let out = 0;
  for (let b = 0; b < batchSize; b++) {
    const image = b * inHeight * inWidth * C;
    for (let yR = 0; yR < outHeight; yR++) {
      const r0 = yR * strideHeight - top;
      for (let yC = 0; yC < outWidth; yC++, out += C) {
        const c0 = yC * strideWidth - left;
        let n = 0;
        for (let r = r0; r < r0 + effectiveFilterHeight; r += dilationHeight)
          for (let c = c0; c < c0 + effectiveFilterWidth; c += dilationWidth)
            if (r >= 0 && r < inHeight && c >= 0 && c < inWidth) bases[n++] = image + (r * inWidth + c) * C;
        for (let d = 0; d < C; d++) {
          let best = -Infinity;
          let at = -1;
          for (let p = 0; p < n; p++) {
            const v = x[bases[p]! + d]!;
            if (v > best) {
              best = v;
              at = bases[p]! + d;
            }
          }
          if (at >= 0) dx[at]! += dy[out + d]!;
        }
      }
    }
  }
  return dx;
}

/** The wasm backend's heap access (no copies); absent on other backends. */
interface WasmHeap {
  makeOutput(shape: number[], dtype: "float32"): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array<ArrayBufferLike>;
}
const isWasmHeap = (backend: unknown): backend is WasmHeap =>
  typeof (backend as Partial<WasmHeap>).typedArrayFromHeap === "function";

const maxPoolGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, input } = inputs as unknown as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const a = attrs as unknown as PoolAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    a.filterSize,
    a.strides,
    1,
    a.pad as "same" | "valid",
    a.dimRoundingMode,
  );
  if (isWasmHeap(backend)) {
    // Allocate first: growing the heap detaches earlier views.
    const out = backend.makeOutput(input.shape, "float32");
    const dx = backend.typedArrayFromHeap(out);
    dx.fill(0);
    maxPoolGradient(backend.typedArrayFromHeap(input), backend.typedArrayFromHeap(dy), info, dx);
    return out;
  }
  const read = (t: tf.TensorInfo) => (backend as tf.KernelBackend).readSync(t.dataId) as Float32Array;
  return tf.tensor(maxPoolGradient(read(input), read(dy), info), input.shape, "float32");
};

function register(kernelName: string, backendName: string, kernelFunc: KernelFunc): void {
  if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
  tf.registerKernel({ kernelName, backendName, kernelFunc });
}

const registered = new Set<string>();

/**
 * Registers the replacement kernels for `backendName` (cpu or wasm; anything else is left alone). Idempotent.
 * Returns the kernel names registered.
 */
export function registerTrainingKernels(backendName: string): string[] {
  if (backendName !== "cpu" && backendName !== "wasm") return [];
  if (registered.has(backendName)) return kernelNamesFor(backendName);
  register(tf.Conv2DBackpropFilter, backendName, filterKernel);
  register(tf.MaxPoolGrad, backendName, maxPoolGradKernel);
  if (backendName === "wasm") {
    const stock = tf.getKernel(tf.Conv2DBackpropInput, backendName)?.kernelFunc;
    register(tf.Conv2DBackpropInput, backendName, inputKernel(stock));
    const stockMatMul = tf.getKernel(tf.BatchMatMul, backendName)?.kernelFunc;
    if (stockMatMul) register(tf.BatchMatMul, backendName, matMulKernel(stockMatMul));
  }
  registered.add(backendName);
  return kernelNamesFor(backendName);
}

function kernelNamesFor(backendName: string): string[] {
  return backendName === "wasm"
    ? [tf.Conv2DBackpropFilter, tf.MaxPoolGrad, tf.Conv2DBackpropInput, tf.BatchMatMul]
    : [tf.Conv2DBackpropFilter, tf.MaxPoolGrad];
}
