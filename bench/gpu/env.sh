# Shared set-up of the bench/gpu/*.sh scripts (sourced, not run): repository root as the working folder and first on
# PYTHONPATH, EFFDATA_DATA found next to the checkout when unset, and the torch / CUDA versions printed.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [ -z "${EFFDATA_DATA:-}" ]; then
  for d in shared/data ../shared/data; do [ -d "$d/cifar10" ] && export EFFDATA_DATA="$(cd "$d" && pwd)" && break; done
fi
: "${EFFDATA_DATA:?set EFFDATA_DATA to the data folder (cifar10/, mnist/ ...)}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
