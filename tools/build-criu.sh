#!/usr/bin/env bash
# Build CRIU 4.1.1 from Debian's source package (trixie) into $1, by default .venv/bin/criu.
#
# Why: bookworm's criu 3.17 cannot start on kernels >= 6.13 on x86 ("vdso: Unexpected rt vDSO
# area bounds"): those kernels split the vvar mapping in two ([vvar] and [vvar_vclock]) and
# CRIU learnt that in 4.1. Only the upstream tarball is fetched, through apt with a private
# source list (the machine's apt configuration is not touched); apt checks it against
# Debian's signed index, and the checksum below pins it. Build dependencies: APT_PACKAGES.
# The archive is the one this machine's own apt configuration already uses for Debian
# (no mirror is named here), with the suite switched to trixie for this one source.
set -euo pipefail

dest=${1:-.venv/bin/criu}
version=4.1.1
sha256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
work=$(mktemp -d /tmp/ocirt-criu-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/lists/partial" "$work/cache"
mirror=$(apt-get indextargets --format '$(REPO_URI) $(ORIGIN) $(RELEASE)' |
	awk '$2 == "Debian" && $3 !~ /-security$/ {print $1; exit}')
if [ -z "$mirror" ]; then
	echo "build-criu: no Debian archive in this machine's apt configuration (apt-get indextargets)" >&2
	exit 1
fi
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
	>"$work/sources.list"
apt_opts=(
	-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root -qq
)
apt-get "${apt_opts[@]}" update
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only --tar-only "criu=$version-1")
echo "$sha256  $work/criu_$version.orig.tar.xz" | sha256sum -c --quiet
tar -C "$work" -xf "$work/criu_$version.orig.tar.xz"
make -s -C "$work/criu-$version" -j"$(nproc)" criu >"$work/build.log" 2>&1 || {
	tail -30 "$work/build.log"
	exit 1
}
install -D -m 0755 "$work/criu-$version/criu/criu" "$dest"
"$dest" --version | head -1
