// Everything the native-tf install downloads, pinned: one TensorFlow (2.18.0, from TensorFlow Java 1.1.0's
// native jars on Maven Central) and the 14 C headers the tfjs binding includes, taken from the tensorflow-cpu
// 2.18.0 wheel on PyPI. Checksums were computed here from the files as published (the jars' sha256 matches
// Maven Central's .sha1 files too; the headers' from the whole wheel, whose own sha256 is PyPI's).

export const TF_VERSION = "2.18.0";
export const TFJS_NODE_VERSION = "4.22.0";
/** Raise when the install's output changes, so existing installs are redone. */
export const INSTALL_REVISION = 1;

export type Variant = "cpu" | "gpu";

export interface Jar {
  classifier: string;
  sha256: string;
  size: number;
}

const JAR_BASE = "org/tensorflow/tensorflow-core-native/1.1.0/tensorflow-core-native-1.1.0";

export const variants: Record<Variant, { pkg: string; jar: Jar }> = {
  cpu: {
    pkg: "@tensorflow/tfjs-node",
    jar: {
      classifier: "linux-x86_64",
      sha256: "81b0e11290ba3b2e134901395ef59f1ae616f8ab7931f0d5c3eeb89c1b97c4e6",
      size: 160_591_394,
    },
  },
  gpu: {
    pkg: "@tensorflow/tfjs-node-gpu",
    jar: {
      classifier: "linux-x86_64-gpu",
      sha256: "9e2c48fbc444e941dc09eb998b16c8d699c8ca950d2bf09ab90871137a982826",
      size: 526_493_073,
    },
  },
};

export const jarFileName = (jar: Jar): string => `${JAR_BASE.split("/").at(-1)}-${jar.classifier}.jar`;
export const jarPath = (jar: Jar): string => `${JAR_BASE}-${jar.classifier}.jar`;
/** Where the two libraries sit inside a jar. */
export const jarLibraryDir = (jar: Jar): string => `org/tensorflow/internal/c_api/${jar.classifier}/`;
export const LIBRARIES = ["libtensorflow_cc.so.2", "libtensorflow_framework.so.2"] as const;

export const wheel = {
  url:
    "https://files.pythonhosted.org/packages/aa/1d/032a9d40762895e51cad06f382135c14d16487a0ad9dcc65aae5bd89c968/" +
    "tensorflow_cpu-2.18.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
  size: 230_152_077,
  sha256: "089e71746960ea581dca53401f84b3b99c8537313e337a9e5dbf97036a936f7e",
  includePrefix: "tensorflow/include/",
};

/** The binding's include closure (from `g++ -M` on binding/*.cc), path under tensorflow/include/ -> sha256. */
export const headers: Record<string, string> = {
  "tensorflow/c/c_api.h": "4ccd0a99a0832bffac33eeb2a26a900710d50c212549ef8e66be3f906d5bdac5",
  "tensorflow/c/c_api_macros.h": "22212de30dca6bc80cf903b5b02f8e240b89ccae4d273d86b3cd232038de6a2d",
  "tensorflow/c/eager/c_api.h": "3c5f0b114a9e6b0e6274cbaea3d272465eae52083a5dd9fbf0cc0d27fd36cb13",
  "tensorflow/c/tf_attrtype.h": "01bf629a52b523c070864ce11d31d33aa33fc2eb559552feb986fc90f512ef0e",
  "tensorflow/c/tf_buffer.h": "007f280677fc16fe49a153b1e41c6cd9e347ea45a59a2f88b85946bbd9bd7d56",
  "tensorflow/c/tf_datatype.h": "2700c38d3355f3769df238e47e5413af193c31b62291fd27438612c73b992ef5",
  "tensorflow/c/tf_status.h": "2f581cefe989344f91598ddd15e3f1433e07748904ae66d3414f210ffc4f879c",
  "tensorflow/c/tf_tensor.h": "a2b0e05a9f72bd87b03525c22bd334ac7f58626361f8c79857998e361620cfb5",
  "tensorflow/c/tf_tstring.h": "da17f6c6ae6e717ecaa2996bbfa913899eb66d2deab731cea5f6ad14f896d706",
  "tensorflow/core/platform/ctstring.h": "02d05f99d6e4425f0389bce4e087e33db05270beb6f15cad2848ec42663e7cf9",
  "tensorflow/core/platform/ctstring_internal.h":
    "ae991518679aea5d789138199d42a08fe43b4375ce3eea31d72ddb37a0ab0c3d",
  "tsl/platform/ctstring.h": "82d701f7649a8652dfaa8e6d0d4194a2ff8b073050df7528d66c1e856b0facc9",
  "tsl/platform/ctstring_internal.h": "a3932165371cd128b101fb2b8274fdb0f36b8e7461c16d18fb0a8d891e3b04e0",
  "xla/tsl/c/tsl_status.h": "73b058cff55c6347f31138a50f298051e6edc7b7b3eee33021642008b891920c",
};

/** tfjs-node's dist/index.js loads lib/napi-v8/tfjs_binding.node (node-pre-gyp's highest napi_versions entry). */
export const NAPI_VERSION = 8;
