#!/usr/bin/env bash
# Build the standalone one-folder bundle dist/qperf-viewer/ with PyInstaller (Linux; macOS too).
#
# Usage: bash installer/build.sh [--models DIR] [--allow-no-model] [--no-clean] [--python PY]
#   --models DIR       bundle the ONNX model (qperf_seg.onnx, metadata.json, README.md) from DIR
#                      instead of models/
#   --allow-no-model   build even without the model (the app then reports it missing)
#   --no-clean         reuse PyInstaller's analysis cache in build/pyinstaller (faster rebuilds)
#   --python PY        the Python whose environment is frozen (default: python3 / python)
# Installs PyInstaller from PyPI into that environment when it is missing. Prints the bundle
# size (target < 400 MB unpacked) and the build time. The full log is in build/pyinstaller/build.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
CLEAN="--clean"
PYINSTALLER_REQ="pyinstaller>=6.22,<7"
SIZE_TARGET_MB=400

while [ $# -gt 0 ]; do
    case "$1" in
        --models) export QPERF_BUNDLE_MODELS="$(cd "$2" && pwd)"; shift 2 ;;
        --allow-no-model) export QPERF_BUNDLE_ALLOW_NO_MODEL=1; shift ;;
        --no-clean) CLEAN=""; shift ;;
        --python) PY="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$ROOT"
if ! "$PY" -c "import qperf_viewer, PySide6" 2>/dev/null; then
    echo "build.sh: $PY cannot import qperf_viewer and PySide6; run 'pip install -e .' first." >&2
    exit 2
fi
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "build.sh: installing PyInstaller ($PYINSTALLER_REQ) from PyPI into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install -q "$PYINSTALLER_REQ"
fi
echo "build.sh: PyInstaller $("$PY" -m PyInstaller --version), $("$PY" -V), $(uname -sm)"

# The xcb (X11) and wayland platform plugins link system libraries that PySide6 does not ship;
# they must be on the build machine for PyInstaller to bundle them (else every desktop needs them).
if [ "$(uname -s)" = "Linux" ]; then
    need=$(cd installer && "$PY" -c "import bundle_manifest as b
print(' '.join(f'{l}={p}' for l, p in b.DESKTOP_SYSTEM_PACKAGES.items()))")
    missing_pkgs=""
    have_libs="$(ldconfig -p 2>/dev/null || true)"
    for pair in $need; do
        case "$have_libs" in
            *"${pair%%=*}"*) ;;
            *) missing_pkgs="$missing_pkgs ${pair#*=}" ;;
        esac
    done
    if [ -n "$missing_pkgs" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "build.sh: installing system libraries for the Qt platform plugins:$missing_pkgs"
            (apt-get install -y -qq --no-install-recommends $missing_pkgs >/dev/null 2>&1 \
                || { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
                     $missing_pkgs >/dev/null; }) \
                || echo "build.sh: WARNING: could not install$missing_pkgs" >&2
        else
            echo "build.sh: WARNING: missing$missing_pkgs (apt-get install them for a" \
                 "bundle that runs on X11 desktops without them)" >&2
        fi
    fi
fi

mkdir -p build/pyinstaller
LOG="build/pyinstaller/build.log"
t0=$(date +%s.%N)
if ! "$PY" -m PyInstaller --noconfirm $CLEAN --log-level WARN \
        --distpath dist --workpath build/pyinstaller installer/qperf-viewer.spec >"$LOG" 2>&1; then
    tail -n 40 "$LOG" >&2
    echo "build.sh: PyInstaller failed (full log: $LOG)" >&2
    exit 1
fi
t1=$(date +%s.%N)
grep -E "qperf-viewer.spec: WARNING" "$LOG" || true

BUNDLE="dist/qperf-viewer"
[ -d "dist/qperf-viewer.app" ] && BUNDLE_APP="dist/qperf-viewer.app" || BUNDLE_APP=""
INTERNAL="$BUNDLE/_internal"
if [ "$(uname -s)" = "Linux" ]; then
    # Ship the desktop installer inside the folder: unpack anywhere, run ./install-linux.sh.
    install -m 755 installer/install-linux.sh "$BUNDLE/install-linux.sh"
    install -m 644 installer/qperf-viewer.desktop "$BUNDLE/qperf-viewer.desktop"
fi
# Guard: nothing of the training or test stack may be in the bundle.
leaked=""
for m in torch onnx onnxscript pytest _pytest hypothesis pypdfium2 IPython matplotlib tkinter; do
    if [ -e "$INTERNAL/$m" ] || [ -e "$INTERNAL/$m.py" ]; then leaked="$leaked $m"; fi
done
if [ -n "$leaked" ]; then
    echo "build.sh: excluded packages found in the bundle:$leaked" >&2
    exit 1
fi
for f in models/qperf_seg.onnx models/metadata.json resources/fonts/DejaVuSans.ttf \
         resources/icons/qperf-viewer.png; do
    [ -f "$INTERNAL/$f" ] || echo "build.sh: WARNING: $f is not in the bundle" >&2
done
if [ "$(uname -s)" = "Linux" ]; then
    for p in "$INTERNAL"/PySide6/Qt/plugins/{platforms,printsupport,imageformats}/*.so; do
        nf=$(LD_LIBRARY_PATH="$INTERNAL" ldd "$p" 2>/dev/null | awk '/not found/ {print $1}' \
             | sort -u | tr '\n' ' ')
        [ -z "$nf" ] || echo "build.sh: WARNING: ${p#"$INTERNAL"/} needs system libraries: $nf" >&2
    done
fi

bytes=$(du -sb "$BUNDLE" | cut -f1)
files=$(find "$BUNDLE" -type f | wc -l)
mb=$("$PY" -c "print(f'{$bytes / 1e6:.0f}')")
verdict=$("$PY" -c "print('within' if $bytes / 1e6 < $SIZE_TARGET_MB else 'OVER')")
build_s=$("$PY" -c "print(f'{$t1 - $t0:.0f}')")
echo "build.sh: bundle $ROOT/$BUNDLE${BUNDLE_APP:+ (and $BUNDLE_APP)}"
echo "build.sh: bundle size ${mb} MB unpacked, ${files} files ($verdict the ${SIZE_TARGET_MB} MB target); build ${build_s} s"
echo "build.sh: largest parts:"
parts="$(du -sb "$INTERNAL"/* 2>/dev/null | sort -rn)" || true
printf '%s\n' "$parts" | awk 'NR <= 8 { printf "  %7.1f MB  %s\n", $1 / 1e6, $2 }'
