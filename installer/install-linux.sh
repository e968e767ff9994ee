#!/usr/bin/env bash
# Install (or remove) the qperf-viewer bundle for the desktop: program folder, a launcher on
# PATH, a .desktop entry and the icon in the hicolor theme.
#
# Usage: bash install-linux.sh [--prefix DIR] [--bundle DIR] [--uninstall]
#   --prefix DIR   where to install (default ~/.local; /usr/local or /opt/qperf-viewer for all
#                  users, as root)
#   --bundle DIR   the one-folder bundle (default: the folder holding this script when it is a
#                  bundle, else dist/qperf-viewer of the source checkout)
#   --uninstall    remove what an install into PREFIX put there
# Layout: PREFIX/lib/qperf-viewer/ (the bundle, read-only for other users),
#   PREFIX/bin/qperf-viewer (launcher), PREFIX/share/applications/qperf-viewer.desktop,
#   PREFIX/share/icons/hicolor/<N>x<N>/apps/qperf-viewer.png and scalable/apps/qperf-viewer.svg.
# The app itself writes only to the user's folders (~/.config, ~/.cache, ~/.local/share).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME="qperf-viewer"
PREFIX="${HOME}/.local"
BUNDLE=""
UNINSTALL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --bundle) BUNDLE="$2"; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install-linux.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"
APPDIR="$PREFIX/lib/$NAME"
LAUNCHER="$PREFIX/bin/$NAME"
DESKTOP="$PREFIX/share/applications/$NAME.desktop"
ICONS="$PREFIX/share/icons/hicolor"
SIZES="16 32 48 64 128 256 512"

refresh_caches() {
    command -v update-desktop-database >/dev/null \
        && update-desktop-database -q "$PREFIX/share/applications" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null && [ -f "$ICONS/index.theme" ] \
        && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
}

if [ "$UNINSTALL" = 1 ]; then
    [ -d "$APPDIR" ] && chmod -R u+w "$APPDIR" && rm -rf "$APPDIR"
    rm -f "$LAUNCHER" "$DESKTOP" "$ICONS/scalable/apps/$NAME.svg"
    for s in $SIZES; do rm -f "$ICONS/${s}x${s}/apps/$NAME.png"; done
    refresh_caches
    echo "install-linux.sh: removed $NAME from $PREFIX (user settings and results are kept in" \
         "~/.config/$NAME, ~/.cache/$NAME and ~/.local/share/$NAME)"
    exit 0
fi

if [ -z "$BUNDLE" ]; then
    if [ -x "$HERE/$NAME" ] && [ -d "$HERE/_internal" ]; then
        BUNDLE="$HERE"
    else
        BUNDLE="$HERE/../dist/$NAME"
    fi
fi
if [ ! -x "$BUNDLE/$NAME" ]; then
    echo "install-linux.sh: no bundle at $BUNDLE (build it: bash installer/build.sh)" >&2
    exit 2
fi
BUNDLE="$(cd "$BUNDLE" && pwd)"
ICONSRC="$BUNDLE/_internal/resources/icons"
[ -d "$ICONSRC" ] || ICONSRC="$HERE/../resources/icons"
DESKTOP_TEMPLATE="$BUNDLE/$NAME.desktop"
[ -f "$DESKTOP_TEMPLATE" ] || DESKTOP_TEMPLATE="$HERE/$NAME.desktop"

# Program folder: a fresh copy, not writable by other users (the app never writes there).
if [ -d "$APPDIR" ]; then chmod -R u+w "$APPDIR"; rm -rf "$APPDIR"; fi
mkdir -p "$PREFIX/lib" "$PREFIX/bin" "$PREFIX/share/applications"
cp -a "$BUNDLE" "$APPDIR"
rm -f "$APPDIR/install-linux.sh" "$APPDIR/$NAME.desktop"
chmod -R a+rX,go-w "$APPDIR"

cat >"$LAUNCHER" <<EOF
#!/bin/sh
# qperf-viewer launcher (installed by install-linux.sh)
exec "$APPDIR/$NAME" "\$@"
EOF
chmod 755 "$LAUNCHER"

sed "s|@LAUNCHER@|\"$LAUNCHER\"|g" "$DESKTOP_TEMPLATE" | sed "s|^TryExec=\"\(.*\)\"$|TryExec=\1|" \
    >"$DESKTOP"
chmod 644 "$DESKTOP"

for s in $SIZES; do
    if [ -f "$ICONSRC/$NAME-$s.png" ]; then
        mkdir -p "$ICONS/${s}x${s}/apps"
        install -m 644 "$ICONSRC/$NAME-$s.png" "$ICONS/${s}x${s}/apps/$NAME.png"
    fi
done
if [ -f "$ICONSRC/$NAME.svg" ]; then
    mkdir -p "$ICONS/scalable/apps"
    install -m 644 "$ICONSRC/$NAME.svg" "$ICONS/scalable/apps/$NAME.svg"
fi
refresh_caches

echo "install-linux.sh: installed $NAME into $PREFIX"
echo "  program:  $APPDIR"
echo "  launcher: $LAUNCHER"
echo "  menu:     $DESKTOP"
case ":$PATH:" in
    *":$PREFIX/bin:"*) ;;
    *) echo "  note: $PREFIX/bin is not on PATH; start it as $LAUNCHER or from the menu" ;;
esac
