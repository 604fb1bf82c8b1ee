#!/usr/bin/env bash
# Source this on a GPU machine before running a `--features cuda` build of brainrecon:
#   source tools/cuda-env.sh && brainrecon generate ... --device cuda
# The binary needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 libraries (cuBLAS, cuBLASLt,
# cuRAND, the runtime, NVRTC, cuSOLVER, cuSPARSE, nvJitLink). This puts on the loader's path the
# first of: $CUDA_LIBS (a folder), $CUDA_HOME/lib64, or the nvidia/*/lib folders of a Python
# environment that has PyTorch built for CUDA 13 ($TORCH_PYTHON, default: the python3 on PATH).
# It also keeps up to 4 GB of the driver's compiled kernels between runs (CUDA_CACHE_MAXSIZE), so
# that only the first run on a machine compiles them.
_brainrecon_libs=""
if [ -n "${CUDA_LIBS:-}" ]; then
  _brainrecon_libs=$CUDA_LIBS
elif [ -n "${CUDA_HOME:-}" ] && [ -e "$CUDA_HOME/lib64/libcublas.so.13" ]; then
  _brainrecon_libs=$CUDA_HOME/lib64
else
  _brainrecon_site=$("${TORCH_PYTHON:-python3}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)
  if [ -n "$_brainrecon_site" ]; then
    _brainrecon_libs=$(ls -d "$_brainrecon_site"/nvidia/*/lib 2>/dev/null | tr '\n' ':' | sed 's/:$//')
  fi
fi
if [ -z "$_brainrecon_libs" ]; then
  echo "cuda-env.sh: no CUDA 13 libraries found: set CUDA_LIBS or CUDA_HOME, or TORCH_PYTHON to a python with PyTorch (CUDA 13)" >&2
else
  export LD_LIBRARY_PATH="$_brainrecon_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-4294967296}
unset _brainrecon_libs _brainrecon_site
