#!/usr/bin/env bash
# Build the chipreg-agent Debian package with dpkg-deb (no debhelper needed).
#
#   scripts/build-agent-deb.sh [OUTDIR]        # default OUTDIR: dist/
#
# The package carries the agent's Python code and only the libraries the agent imports
# (cryptography, PyNaCl, httpx, pydantic, prometheus-client, nvidia-ml-py, orjson; not FastAPI or
# SQLAlchemy) in /usr/lib/chipreg-agent, for the Debian python3 it was built with (binary
# wheels: the package is architecture- and Python-minor-specific). It installs
#   /usr/lib/chipreg-agent/                     (the Python code and libraries)
#   /usr/bin/chipreg-agent                      (= chipreg agent ...)
#   /lib/systemd/system/chipreg-agent.service   (deploy/systemd/chipreg-agent.service)
#   /etc/chipreg/agent.env                      (conffile, from deploy/agent.env.example)
#   /var/lib/chipreg-agent                      (state: keys, spool, chain heads; mode 0700)
# and its postinst creates the system user chipreg-agent. Environment: PYTHON (the
# interpreter whose version the package targets, default /usr/bin/python3), PIP (default:
# "$PYTHON -m pip", or this tree's .venv/bin/pip when the interpreter has no pip).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$(realpath -m "${1:-dist}")
python=${PYTHON:-/usr/bin/python3}
if [ -n "${PIP:-}" ]; then
  read -r -a pip <<<"$PIP"
elif "$python" -m pip --version >/dev/null 2>&1; then
  pip=("$python" -m pip)
else
  pip=("$root/.venv/bin/pip")
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

pyver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
pynext=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
arch=$(dpkg --print-architecture)
deps=(
  "cryptography>=42" "pynacl>=1.5" "httpx>=0.27" "pydantic>=2.6" "pydantic-settings>=2.2"
  "prometheus-client>=0.20" "nvidia-ml-py>=12.535" "orjson>=3.9"
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg="$work/chipreg-agent"
lib="$pkg/usr/lib/chipreg-agent"
mkdir -p "$pkg/DEBIAN" "$lib" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/chipreg" \
  "$pkg/var/lib/chipreg-agent" "$pkg/usr/share/doc/chipreg-agent"

# The chipreg wheel without its server dependencies, then the agent's own dependencies as
# binary wheels for the target interpreter.
"${pip[@]}" wheel --quiet --no-deps -w "$work/wheel" "$root"
"${pip[@]}" install --quiet --no-compile --no-deps --target "$lib" "$work"/wheel/chipreg-*.whl
rm -rf "$lib/bin"
"${pip[@]}" install --quiet --no-compile --only-binary=:all: --python-version "$pyver" \
  --implementation cp --target "$lib" "${deps[@]}"
# The agent never runs the registry, verifier, simulator or audit code: keep the package small.
rm -rf "$lib/bin" "$lib"/registry/{api,db,ingest,migrations,repositories,services} \
  "$lib"/simulator "$lib"/verifier "$lib"/audit
find "$lib" -name '__pycache__' -prune -exec rm -rf {} +
rm -rf "$lib"/certifi/tests "$lib"/example.py
find "$lib" -name '*.so' -exec strip --strip-unneeded {} +

cat >"$pkg/usr/bin/chipreg-agent" <<'EOF'
#!/bin/sh
# chipreg-agent: the chipreg host agent (`chipreg agent ...`), from the chipreg-agent package.
PYTHONPATH=/usr/lib/chipreg-agent${PYTHONPATH:+:$PYTHONPATH} \
  exec /usr/bin/python3 -m registry.cli.main agent "$@"
EOF
chmod 0755 "$pkg/usr/bin/chipreg-agent"
install -m 0644 deploy/systemd/chipreg-agent.service "$pkg/lib/systemd/system/"
install -m 0640 deploy/agent.env.example "$pkg/etc/chipreg/agent.env"
chmod 0700 "$pkg/var/lib/chipreg-agent"
cat >"$pkg/usr/share/doc/chipreg-agent/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: chipreg
Source: https://chipreg.org/

Files: *
Copyright: 2026 chipreg maintainers
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

printf '%s\n' "chipreg-agent (${version}) unstable; urgency=medium" "" \
  "  * Built by scripts/build-agent-deb.sh from the chipreg tree." "" \
  " -- chipreg maintainers <maintainers@chipreg.org>  $(date -R)" \
  | gzip -9n >"$pkg/usr/share/doc/chipreg-agent/changelog.gz"
installed_kb=$(du -sk "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: chipreg-agent
Version: ${version}
Section: admin
Priority: optional
Architecture: ${arch}
Depends: python3 (>= ${pyver}), python3 (<< ${pynext}), libc6 (>= 2.28), adduser
Installed-Size: ${installed_kb}
Maintainer: chipreg maintainers <maintainers@chipreg.org>
Homepage: https://chipreg.org/
Description: chipreg host agent: signed accelerator usage reports
 Discovers the accelerators of a host (NVIDIA NVML), has each chip sign
 one usage report per reporting window, spools the reports durably and
 posts them to a chipreg registry. Exports Prometheus metrics named like
 NVIDIA dcgm-exporter's, and writes reports to files for air-gapped sites
 (--offline) that "chipreg-agent upload" posts later.
EOF
echo "/etc/chipreg/agent.env" >"$pkg/DEBIAN/conffiles"

cat >"$pkg/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "configure" ]; then
  if ! getent passwd chipreg-agent >/dev/null; then
    adduser --system --group --home /var/lib/chipreg-agent --no-create-home \
      --gecos "chipreg agent" chipreg-agent >/dev/null
  fi
  # NVML reads /dev/nvidia*, usually group video.
  if getent group video >/dev/null; then adduser chipreg-agent video >/dev/null || true; fi
  chown chipreg-agent:chipreg-agent /var/lib/chipreg-agent
  chmod 0700 /var/lib/chipreg-agent
  # The token lives here: readable by the agent, not by everyone.
  chown root:chipreg-agent /etc/chipreg/agent.env
  chmod 0640 /etc/chipreg/agent.env
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    # Not started: the token and registry URL in /etc/chipreg/agent.env come first.
    systemctl enable chipreg-agent.service >/dev/null || true
  fi
fi
exit 0
EOF
cat >"$pkg/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = "remove" ]; then
  systemctl stop chipreg-agent.service >/dev/null || true
  systemctl disable chipreg-agent.service >/dev/null || true
fi
exit 0
EOF
cat >"$pkg/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
# The spool (unsent signed reports) and chip keys are kept unless purged.
if [ "$1" = "purge" ]; then
  rm -rf /var/lib/chipreg-agent
  if getent passwd chipreg-agent >/dev/null; then deluser --system chipreg-agent >/dev/null || true; fi
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null || true; fi
exit 0
EOF
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/chipreg-agent_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
