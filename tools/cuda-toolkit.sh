#!/usr/bin/env bash
# Installs, without root and without a GPU, what `cargo build --features cuda` needs: nvcc and the
# CUDA 13.0 libraries from NVIDIA's PyPI wheels, laid out as a CUDA_HOME, plus a link-time stand-in
# for the driver library libcuda.so (the real one comes with the NVIDIA driver, on GPU machines only).
#
#   bash tools/cuda-toolkit.sh [--compiler-only] [PREFIX]   # default PREFIX: ~/.local/brainrecon-cuda13
#   source PREFIX/env.sh
#   cargo build --release --locked -p brainrecon-cli --features cuda
#
# --compiler-only installs nvcc and the headers without the libraries (about 1 GB less): enough for
# `cargo check --features cuda`, not for linking.
#
# The stand-in libcuda.so is for linking only; every function in it returns
# CUDA_ERROR_STUB_LIBRARY. Never put PREFIX/lib64/stubs on LD_LIBRARY_PATH where programs run.
set -euo pipefail
libraries=yes
if [ "${1:-}" = "--compiler-only" ]; then
  libraries=no
  shift
fi
PREFIX=${1:-$HOME/.local/brainrecon-cuda13}
CAP=${CUDA_COMPUTE_CAP:-90}
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
root=$PWD
command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON is required to fetch the CUDA wheels" >&2; exit 2; }
command -v gcc >/dev/null || { echo "error: gcc is required (the link-time libcuda.so is built with it)" >&2; exit 2; }

wheels=$PREFIX/wheels
mkdir -p "$wheels"
# CUDA 13.0 pieces: the compiler (nvcc, its front end, NVVM, CCCL headers) and the libraries the
# cuda build links: runtime, NVRTC, cuBLAS(Lt), cuRAND (candle) and cuSOLVER with its cuSPARSE
# and nvJitLink (the GPU ridge).
compiler="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85"
libs="nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
  nvidia-cusolver==12.0.4.66 nvidia-cusparse==12.6.3.3 nvidia-nvjitlink==13.0.88"
[ "$libraries" = yes ] || libs=""
# shellcheck disable=SC2086  # the package lists split on purpose
"$PYTHON" -m pip install -q --target "$wheels" --no-cache-dir --upgrade --no-deps $compiler $libs
cu=$wheels/nvidia/cu13
[ -x "$cu/bin/nvcc" ] || { echo "error: the nvcc wheel did not install $cu/bin/nvcc" >&2; exit 2; }

# A CUDA_HOME: bin, include, nvvm, lib64 (every library of the wheels, plus the unversioned
# names the linker looks for).
cd "$PREFIX"
ln -sfn "$cu/bin" bin
ln -sfn "$cu/include" include
ln -sfn "$cu/nvvm" nvvm
mkdir -p lib64/stubs
ln -sfn lib64 lib
for f in "$cu"/lib/*; do ln -sfn "$f" lib64/; done
(
  cd lib64
  for versioned in lib*.so.*; do
    base=${versioned%%.so.*}.so
    [ -e "$base" ] || ln -sfn "$versioned" "$base"
  done
)

# The link-time libcuda.so: one function per cu* symbol that cudarc's driver bindings declare.
bindings=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src/driver/sys/mod.rs 2>/dev/null | tail -n 1 || true)
if [ -z "$bindings" ]; then
  (cd "$root" && cargo fetch --locked >/dev/null)
  bindings=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src/driver/sys/mod.rs | tail -n 1)
fi
grep -oE '^ *pub (unsafe )?fn cu[A-Za-z0-9_]*' "$bindings" | sed -E 's/.*fn //' | sort -u \
  | awk '{ printf "int %s(void) { return 34; }\n", $1 }' > lib64/stubs/libcuda_stand_in.c
gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o lib64/stubs/libcuda.so lib64/stubs/libcuda_stand_in.c

cat > env.sh <<ENV
# source me before 'cargo build --features cuda' (written by tools/cuda-toolkit.sh)
export CUDA_HOME=$PREFIX CUDA_PATH=$PREFIX PATH=$PREFIX/bin:\$PATH CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-$CAP}
export LIBRARY_PATH=$PREFIX/lib64:$PREFIX/lib64/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}
ENV
"$PREFIX/bin/nvcc" --version | tail -n 2
echo "ready: source $PREFIX/env.sh"
