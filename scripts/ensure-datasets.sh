#!/usr/bin/env bash
# Makes sure Fashion-MNIST (Debian's dataset-fashion-mnist: the real IDX files) is at /usr/share/datasets/fashion-mnist.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [[ -f "$dir/train-images-idx3-ubyte.gz" || -f "$dir/train-images-idx3-ubyte" ]]; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "Fashion-MNIST is missing: run  sudo apt-get install -y dataset-fashion-mnist" >&2
  exit 1
fi
echo "installing Debian's dataset-fashion-mnist" >&2
apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
