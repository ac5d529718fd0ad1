#!/usr/bin/env bash
# Builds the clean Debian bookworm image the .deb test installs the packages into, with no
# registry (scripts/images/lib.sh: mmdebstrap from the apt mirror, `docker import`, and a
# `docker build` with no RUN step for the stop signal).
# Prints the image tag on stdout (everything else goes to stderr):
#   tag=$(packaging/test/image.sh)
# Usage: packaging/test/image.sh [TAG]     (default TAG: clank-test/debian-debs:bookworm)
# A tag already in the engine is reused as is: the build runs once per machine; `docker rmi`
# the tag to rebuild.
#
# The image: Debian's minbase (Essential packages + apt) with ca-certificates, plus
#   - adduser, procps: what a Debian server has (priority important) and the packages depend on
#     (postinst makes the system users with adduser; the daemon runs procps's `kill`), so
#     `dpkg -i` proves their Depends are met by what is here, with nothing fetched;
#   - curl: the test's own HTTP client (no package of ours needs it);
#   - systemd: its files only (`systemd-analyze verify` checks the installed units), never
#     running: no /run/systemd/system, as in a container, so the maintainer scripts' guards
#     are what is exercised, and the test runs each unit's ExecStart by hand.
# No Docker: the installer's refusal without Docker is part of what the test checks.
set -euo pipefail

tag="${1:-clank-test/debian-debs:bookworm}"
# shellcheck source-path=SCRIPTDIR source=../../scripts/images/lib.sh
. "$(dirname "$0")/../../scripts/images/lib.sh"
image_begin "$tag"

image_build "$tag" adduser,procps,curl,systemd SIGTERM \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]'
