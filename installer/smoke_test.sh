#!/usr/bin/env bash
# Smoke test of the built bundle, run from a read-only copy as an ordinary user.
#
# Usage: bash installer/smoke_test.sh [BUNDLE_DIR]     (default: dist/qperf-viewer)
# Environment: QPERF_SMOKE_KEEP=1 keeps the work folder; QPERF_SMOKE_VARIANT (default demo)
#              and QPERF_SMOKE_SEED (default 2026) choose the synthetic exam.
#
# Copies the bundle to a temporary folder and makes it read-only (root: the commands run as
# user nobody through setpriv, so that read-only really holds), with an empty HOME, no XDG_*
# variables, a clean environment (env -i: nothing from the build's Python leaks in) and a
# read-only working folder. Then:
#   1. --version (first run with the bundle evicted from the page cache, then warm runs)
#   2. phantom: writes a synthetic demo exam
#   3. analyze on it -> report.pdf + results.json (skipped with a clear note when the bundle
#      has no analyze command because qperf_viewer/pipeline_cli.py does not exist yet)
#   4. gui --screenshot offscreen (first and second start), and under Xvfb with the xcb plugin
#      when xvfb-run is installed; with analyze, also gui --open EXAM --analyze --screenshot
#   5. nothing written into the bundle or the working folder; settings, caches and logs only
#      in the standard user folders (~/.config, ~/.cache, ~/.local/share); no onnxruntime
#      telemetry folder (~/.cache/Microsoft)
# Prints the bundle size and the start-up times; exits 1 when a check fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${1:-$ROOT/dist/qperf-viewer}"
VARIANT="${QPERF_SMOKE_VARIANT:-demo}"
SEED="${QPERF_SMOKE_SEED:-2026}"
SIZE_TARGET_MB=400
if [ ! -x "$SRC/qperf-viewer" ]; then
    echo "smoke_test.sh: no bundle at $SRC (build it first: bash installer/build.sh)" >&2
    exit 2
fi

W="$(mktemp -d /tmp/qperf-smoke.XXXXXX)"
chmod 755 "$W"
APPDIR="$W/app"
HOMED="$W/home"
OUTD="$W/out"
CWD="$W/cwd"
LOGS="$W/logs"
mkdir -p "$HOMED" "$OUTD" "$CWD" "$LOGS" "$W/run"
cp -a "$SRC" "$APPDIR"
chmod -R a+rX,a-w "$APPDIR"
chmod 555 "$CWD"
AS_USER=()
WHO="$(id -un)"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
    WHO="nobody (uid 65534)"
    chown 65534:65534 "$HOMED" "$OUTD" "$W/run"
fi
chmod 700 "$W/run"
MARK="$W/.mark"
touch "$MARK"
sleep 1

# One command of the bundled app: runapp.sh PLATFORM ARGS...; clean environment, read-only cwd.
cat >"$W/runapp.sh" <<EOF
#!/usr/bin/env bash
plat="\$1"; shift
cd "$CWD" || exit 99
exec ${AS_USER[*]} env -i HOME="$HOMED" PATH=/usr/bin:/bin LANG=C.UTF-8 \\
    QT_QPA_PLATFORM="\$plat" XDG_RUNTIME_DIR="$W/run" \${DISPLAY:+DISPLAY=\$DISPLAY} \\
    "$APPDIR/qperf-viewer" "\$@"
EOF
chmod 755 "$W/runapp.sh"

FAILS=0
declare -a SUMMARY=()
pass() { SUMMARY+=("PASS  $1"); echo "PASS  $1"; }
fail() { SUMMARY+=("FAIL  $1"); echo "FAIL  $1"; FAILS=$((FAILS + 1)); }
skip() { SUMMARY+=("SKIP  $1"); echo "SKIP  $1"; }
note() { SUMMARY+=("NOTE  $1"); echo "NOTE  $1"; }

# run NAME PLATFORM ARGS...: sets RC and MS (wall time, ms); output in $LOGS/NAME.{out,err}
run() {
    local name="$1"; shift
    local t0 t1
    t0=$(date +%s%N)
    "$W/runapp.sh" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"
    RC=$?
    t1=$(date +%s%N)
    MS=$(((t1 - t0) / 1000000))
}
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
show_err() { tail -n 12 "$LOGS/$1.err" | sed 's/^/      /'; }
# Drop the bundle's files from the page cache (a cold start as after a reboot, for these files).
evict() {
    command -v python3 >/dev/null || return 0
    python3 - "$APPDIR" <<'PY'
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(d, f)
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
PY
}
gui_ok() {  # NAME PNG: rc 0, a PNG written, no traceback or fatal error
    [ "$RC" = 0 ] && [ -s "$2" ] && [ "$(head -c 4 "$2" | tail -c 3)" = "PNG" ] \
        && ! grep -q -E "Traceback|Fatal Python error|Segmentation fault" "$LOGS/$1.err"
}

echo "smoke_test.sh: bundle $SRC -> read-only copy $APPDIR, running as $WHO, HOME=$HOMED"
BYTES=$(du -sb "$APPDIR" | cut -f1)
SIZE_MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.0f", b / 1e6 }')
if [ "$SIZE_MB" -lt "$SIZE_TARGET_MB" ]; then
    pass "bundle size $SIZE_MB MB unpacked (target < $SIZE_TARGET_MB MB)"
else
    fail "bundle size $SIZE_MB MB unpacked (target < $SIZE_TARGET_MB MB)"
fi
for f in models/qperf_seg.onnx models/metadata.json resources/fonts/DejaVuSans.ttf \
         resources/icons/qperf-viewer.png PySide6/Qt/plugins/platforms/libqoffscreen.so \
         PySide6/Qt/plugins/platforms/libqxcb.so PySide6/Qt/plugins/printsupport \
         PySide6/Qt/plugins/imageformats/libqsvg.so; do
    [ -e "$APPDIR/_internal/$f" ] || fail "bundle lacks _internal/$f"
done
[ -f "$APPDIR/_internal/models/README.md" ] || note "no model card (models/README.md) in the bundle"
leaked=$(cd "$APPDIR/_internal" && ls -d torch onnx onnxscript pytest _pytest hypothesis \
    pypdfium2 IPython matplotlib tkinter 2>/dev/null | tr '\n' ' ')
[ -z "$leaked" ] && pass "no torch/onnx/test/notebook packages in the bundle" \
    || fail "excluded packages in the bundle: $leaked"

# 1. --version
evict
run version_cold offscreen --version
V_COLD=$MS
if [ "$RC" = 0 ] && grep -q "^qperf-viewer [0-9]" "$LOGS/version_cold.out"; then
    pass "--version: $(cat "$LOGS/version_cold.out") (cold start $(secs "$V_COLD") s)"
else
    fail "--version (rc $RC)"; show_err version_cold
fi
WARM=()
for i in 1 2 3; do run "version_$i" offscreen --version; WARM+=("$MS"); done
V_WARM=$(printf '%s\n' "${WARM[@]}" | sort -n | sed -n 2p)

# 2. phantom
EXAM="$OUTD/exam"
run phantom offscreen phantom "$EXAM" --seed "$SEED" --variant "$VARIANT"
PH_MS=$MS
NDCM=$(find "$EXAM/dicom" -type f 2>/dev/null | wc -l)
if [ "$RC" = 0 ] && [ "$NDCM" -gt 0 ]; then
    pass "phantom --variant $VARIANT --seed $SEED: $NDCM DICOM files in $(secs "$PH_MS") s"
else
    fail "phantom (rc $RC)"; show_err phantom
fi

# 3. analyze
run help offscreen --help
AN_MS=""
if grep -q -w "analyze" "$LOGS/help.out"; then
    HAVE_ANALYZE=1
    run analyze offscreen analyze "$EXAM/dicom" --out "$OUTD/report"
    AN_MS=$MS
    PDF="$OUTD/report/report.pdf"
    # exit 0: complete; 1: finished with problems (partial report, notes say why); 2: bad input
    if { [ "$RC" = 0 ] || [ "$RC" = 1 ]; } && [ -s "$PDF" ] && [ "$(head -c 4 "$PDF")" = "%PDF" ] \
            && [ -s "$OUTD/report/results.json" ]; then
        pass "analyze: report.pdf ($(du -k "$PDF" | cut -f1) KiB) + results.json in $(secs "$AN_MS") s (exit $RC)"
        [ "$RC" = 1 ] && note "analyze finished with problems: $(grep -m 2 'note:' "$LOGS/analyze.out" | sed 's/^ *//' | tr '\n' ' ')"
    else
        fail "analyze (rc $RC; report.pdf $( [ -s "$PDF" ] && echo present || echo missing))"
        show_err analyze
    fi
    # The same analysis by the source install (if this machine has one) must give the same numbers.
    SRC_PY="${PYTHON:-python3}"
    if [ -s "$OUTD/report/results.json" ] && "$SRC_PY" -c "import qperf_viewer" 2>/dev/null; then
        mkdir -p "$W/srchome"
        (cd "$W" && QPERF_HOME="$W/srchome" QPERF_MODELS="$APPDIR/_internal/models" \
            QT_QPA_PLATFORM=offscreen "$SRC_PY" -m qperf_viewer analyze "$EXAM/dicom" \
            --out "$W/report_src" >"$LOGS/analyze_src.out" 2>"$LOGS/analyze_src.err")
        SRC_RC=$?
        if cmp_out=$("$SRC_PY" - "$OUTD/report/results.json" "$W/report_src/results.json" <<'PY'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def vals(d):
    out = {"mpr.global": d["mpr"]["global"]}
    out.update({f"mpr.seg{i + 1}": v for i, v in enumerate(d["mpr"]["segments"])})
    for c, cd in d["conditions"].items():
        out[f"{c}.global"] = cd["global_mbf_ml_min_g"]
        out.update({f"{c}.seg{i + 1}": v for i, v in enumerate(cd["segment_mbf_ml_min_g"])})
    return out
va, vb = vals(a), vals(b)
bad = [k for k in va if (va[k] is None) != (vb.get(k) is None)
       or (va[k] is not None and not math.isclose(va[k], vb[k], rel_tol=1e-4, abs_tol=1e-6))]
n = sum(v is not None for v in va.values())
print(f"{n} values" if not bad else "differ: " + ", ".join(f"{k} {va[k]} vs {vb.get(k)}" for k in bad[:5]))
sys.exit(1 if bad else 0)
PY
        ); then
            pass "bundle and source install agree on MBF/MPR ($cmp_out; source exit $SRC_RC)"
        else
            fail "bundle and source install disagree: $cmp_out"
        fi
    else
        skip "bundle vs source comparison (no source install of qperf_viewer here)"
    fi
else
    HAVE_ANALYZE=0
    fail "the bundle has no 'analyze' command: rebuild it (bash installer/build.sh)"
fi

# 4. GUI offscreen, first and second start
evict
run gui_cold offscreen gui --screenshot "$OUTD/gui1.png"
G_COLD=$MS
if gui_ok gui_cold "$OUTD/gui1.png"; then
    pass "gui --screenshot offscreen: started, saved, closed cleanly (cold $(secs "$G_COLD") s)"
else
    fail "gui --screenshot offscreen (rc $RC)"; show_err gui_cold
fi
run gui_warm offscreen gui --screenshot "$OUTD/gui2.png"
G_WARM=$MS
gui_ok gui_warm "$OUTD/gui2.png" || { fail "gui second start (rc $RC)"; show_err gui_warm; }
if command -v xvfb-run >/dev/null; then
    t0=$(date +%s%N)
    xvfb-run -a -s "-ac -screen 0 1600x1000x24" "$W/runapp.sh" xcb gui \
        --screenshot "$OUTD/gui_xcb.png" >"$LOGS/gui_xcb.out" 2>"$LOGS/gui_xcb.err"
    RC=$?
    G_XCB=$((($(date +%s%N) - t0) / 1000000))
    if gui_ok gui_xcb "$OUTD/gui_xcb.png"; then
        pass "gui under Xvfb with the xcb plugin ($(secs "$G_XCB") s incl. Xvfb start)"
    else
        fail "gui under Xvfb with the xcb plugin (rc $RC)"; show_err gui_xcb
    fi
else
    skip "gui with the xcb plugin: xvfb-run not installed (apt-get install xvfb xauth)"
fi
if [ "$HAVE_ANALYZE" = 1 ]; then
    run gui_analyze offscreen gui --open "$EXAM/dicom" --analyze --screenshot "$OUTD/gui_an.png"
    if gui_ok gui_analyze "$OUTD/gui_an.png"; then
        pass "gui --open EXAM --analyze --screenshot in $(secs "$MS") s"
    else
        fail "gui --open EXAM --analyze (rc $RC)"; show_err gui_analyze
    fi
fi

# 5. where files were written
written=$(find "$APPDIR" -newer "$MARK" 2>/dev/null | head -n 5)
[ -z "$written" ] && pass "nothing written into the (read-only) bundle" \
    || fail "files written into the bundle: $written"
[ -z "$(ls -A "$CWD")" ] && pass "nothing written into the working folder" \
    || fail "files written into the working folder: $(ls -A "$CWD" | head -n 5 | tr '\n' ' ')"
[ -d "$HOMED/.cache/Microsoft" ] && fail "onnxruntime telemetry folder ~/.cache/Microsoft written"
USERFILES=$(cd "$HOMED" && find . -type f | sed 's|^\./||' | sort)
other=$(printf '%s\n' "$USERFILES" | grep -v -E '^(\.config|\.cache|\.local/share)/qperf-viewer/' \
    | grep -v '^$' || true)
if [ -n "$(printf '%s\n' "$USERFILES" | grep '^\.local/share/qperf-viewer/logs/')" ]; then
    pass "log file in ~/.local/share/qperf-viewer/logs"
else
    fail "no log file in ~/.local/share/qperf-viewer/logs"
fi
echo "files written under HOME (top folders):"
printf '%s\n' "$USERFILES" | grep -v '^$' | awk -F/ '{ k = $1 "/" $2; if ($1 == ".local") k = k "/" $3; n[k]++ } END { for (k in n) printf "  %-40s %d file(s)\n", k, n[k] }' | sort
[ -z "$other" ] || note "written outside qperf-viewer's own user folders: $(printf '%s\n' "$other" | head -n 5 | tr '\n' ' ')"

echo
echo "===== qperf-viewer bundle smoke test ====="
printf '%s\n' "${SUMMARY[@]}"
echo "----- figures -----"
echo "bundle size:            $SIZE_MB MB unpacked ($(find "$APPDIR" -type f | wc -l) files)"
echo "--version:              cold $(secs "$V_COLD") s, warm $(secs "$V_WARM") s (median of 3)"
echo "GUI start to screenshot: cold $(secs "$G_COLD") s, warm $(secs "$G_WARM") s (offscreen; includes the screenshot delay of ~0.7 s)"
echo "phantom ($VARIANT):      $(secs "$PH_MS") s"
[ -n "$AN_MS" ] && echo "analyze:                $(secs "$AN_MS") s"
echo "(cold = the bundle's files evicted from the page cache; system libraries stay cached)"
if [ "${QPERF_SMOKE_KEEP:-0}" = 1 ]; then
    echo "work folder kept: $W"
else
    chmod -R u+w "$W" 2>/dev/null
    rm -rf "$W"
fi
if [ "$FAILS" -gt 0 ]; then
    echo "smoke_test.sh: $FAILS check(s) FAILED"
    exit 1
fi
echo "smoke_test.sh: all checks passed"
