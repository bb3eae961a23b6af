# User entry points of the archiver appliance tree (see README.md).
# Every target bootstraps what it needs: `make test` on a fresh Debian 12 machine
# installs the Debian packages, the venv and the test tools itself, idempotently.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MODEL ?= 450
VM ?= a
VERSION := $(shell cat firmware/VERSION)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

# What the appliance runs: Debian's Python libraries, the same on host and image.
# The list lives in image/debian-runtime.txt, which the image build reads too.
DEBIAN_RUNTIME := $(shell sed -e 's/\#.*//' image/debian-runtime.txt)
# What the build host needs to build images, boot VMs and run the tests.
DEBIAN_HOST := python3-venv python3-pip python3-setuptools python3-wheel git make \
	qemu-system-x86 qemu-utils mmdebstrap dovecot-imapd dovecot-pop3d swaks notmuch maildir-utils mutt \
	iproute2 openssl systemd chromium e2fsprogs openssh-client python3-xlwt \
	p7zip-full g++ libpoppler-private-dev
DEBIAN_PACKAGES := $(DEBIAN_RUNTIME) $(DEBIAN_HOST)
# Also for the tests: the directories they start (OpenLDAP's slapd; Samba as an AD domain
# controller) and a QR code reader. Installing them may start system daemons (where systemd
# runs); the tests never use those, but instances of their own on ports of their own.
DEBIAN_PACKAGES += slapd ldap-utils samba samba-ad-dc winbind krb5-user zbar-tools

# The venv is reinstalled only when what it is built from changes.
SETUP_INPUTS := pyproject.toml tests/requirements.txt
SETUP_STAMP := $(VENV)/.setup-$(shell cat $(SETUP_INPUTS) | sha256sum | cut -c1-16)
PDF_TEXT_SERVER := $(VENV)/libexec/archiver/pdf-text-server

.PHONY: help setup test test-fast bench image flash pair vmtest hil clean

help:
	@echo "make pair    build the default model's image and boot two mirrored virtual appliances"
	@echo "make test    install what is needed, then run every test tier"
	@echo "other targets: setup test-fast bench image MODEL= flash VM= vmtest hil HOSTS= clean"

setup: apt-packages $(SETUP_STAMP) $(PDF_TEXT_SERVER)
	@echo "setup: ok ($(VENV)/bin/archiver, firmware $$(cat firmware/VERSION))"

# Installs only the Debian packages that are missing; a second run just checks.
apt-packages:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:$$missing"; \
	  apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
.PHONY: apt-packages

# A venv over Debian's python3 with system site packages, so the host tests run
# against exactly the libraries the image ships; only test tools come from PyPI.
$(SETUP_STAMP): $(SETUP_INPUTS)
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --disable-pip-version-check -r tests/requirements.txt
	@rm -f $(VENV)/.setup-*; touch $@

# The one compiled program (image/native.py), where the venv's Python looks for it.
$(PDF_TEXT_SERVER): services/archive/pdf_text_server.cc image/native.py | $(SETUP_STAMP)
	$(PY) -m image.native $@

# Every tier: unit, integration (processes, namespaces, Dovecot, browser, image builds) and
# the VM tier (tests/system on a fresh mirrored pair of virtual appliances of MODEL).
# In runs of pytest one after the other: first the unit and integration tests, a test file
# at a time on each of TEST_WORKERS processes (pytest-xdist; their servers take free ports
# of their own, their network namespaces are named for their pid, and most of their time is
# spent waiting on processes they started); then, alone, the tests that must not share the
# CPU: tests/integration/supervisor (`archiver run` with its indexer child at nice 10 under
# a steady SMTP inflow, waiting for it to catch up and compact: beside another worker's
# processes at nice 0 it can starve past the tests' timeouts) and the VM tier (CPU-bound
# under TCG, with timeouts). The image builds (tests/integration/image: mmdebstrap, dpkg,
# mkfs, compression; half of two cores left idle) run beside the supervisor tests at nice 19
# and idle I/O priority, so that they take only what those leave (their output is printed
# after the supervisor tests'). Likewise BESIDE_VMS, tests that only compute (the code
# against a commit before it over generated corpora, no servers nor timeouts of their own),
# run beside the VM tier at nice 19 on TEST_WORKERS, in the quarter of two cores its VMs
# leave idle, not in the first run. Not beside the first run: nice 19 yields to its tests
# but not to the indexers they start under SCHED_IDLE (services/supervisor), which then
# wait (ci69: the first run 1,263 s with 26 such files beside it, against 1,111 s with ten
# of them in it). Three workers on two cores: with two, a tenth of the first run's CPU sat
# idle while tests waited on their servers (ci70: 1,184 s; with three, ci71: 1,078 s, idle
# near 0). Every run runs even when one before fails; make test fails if any does.
TEST_WORKERS ?= 3
ALONE := tests/integration/supervisor tests/integration/image
IMAGE_TEST_LOG := build/test-image.log
BESIDE_VMS := $(addprefix tests/unit/archive/test_,summary_document_as_before.py \
	addresses.py html_text_as_before.py held_payload.py sniff_and_decode_as_before.py \
	body_text_start.py views_follow_indexer.py terms_plain_runs.py mime_parts_wrapped_cut.py \
	large_containers_as_before.py) \
	$(addprefix tests/unit/web/test_,uuencoded_attachment_files.py mail_view_html_as_indexed.py)
BESIDE_VMS_LOG := build/test-beside-vms.log

test: setup
	@status=0; mkdir -p build; \
	echo "$(PYTEST) --durations=15 -n $(TEST_WORKERS) --dist loadfile tests/unit tests/integration $(ALONE:%=--ignore=%) $(BESIDE_VMS:%=--ignore=%)"; \
	$(PYTEST) --durations=15 -n $(TEST_WORKERS) --dist loadfile tests/unit tests/integration \
	  $(ALONE:%=--ignore=%) $(BESIDE_VMS:%=--ignore=%) || status=$$?; \
	echo "nice -n 19 ionice -c 3 $(PYTEST) --durations=15 tests/integration/image > $(IMAGE_TEST_LOG) &"; \
	nice -n 19 ionice -c 3 $(PYTEST) --durations=15 tests/integration/image \
	  > $(IMAGE_TEST_LOG) 2>&1 & images=$$!; \
	echo "$(PYTEST) --durations=15 tests/integration/supervisor"; \
	$(PYTEST) --durations=15 tests/integration/supervisor || status=$$?; \
	wait $$images || status=$$?; \
	echo "tests/integration/image (beside it, at nice 19):"; cat $(IMAGE_TEST_LOG); \
	echo "nice -n 19 $(PYTEST) --durations=15 -n $(TEST_WORKERS) --dist loadfile $(BESIDE_VMS) > $(BESIDE_VMS_LOG) &"; \
	nice -n 19 $(PYTEST) --durations=15 -n $(TEST_WORKERS) --dist loadfile $(BESIDE_VMS) \
	  > $(BESIDE_VMS_LOG) 2>&1 & beside=$$!; \
	echo "MODEL=$(MODEL) $(PYTEST) --durations=15 tests/system"; \
	MODEL=$(MODEL) $(PYTEST) --durations=15 tests/system || status=$$?; \
	wait $$beside || status=$$?; \
	echo "BESIDE_VMS (beside it, at nice 19):"; cat $(BESIDE_VMS_LOG); \
	exit $$status

# For iteration: no VMs, no image builds, no browser, nothing marked slow.
test-fast: setup
	$(PYTEST) -m "not system and not image and not browser and not slow" tests

bench: setup
	$(PY) -m tests.bench.run

# The image of MODEL: build/images/$(MODEL)-$(VERSION)/ (disk.qcow2, vmlinuz, initrd.img,
# signed manifests, build.log); the base tree is cached in build/cache/.
image: setup
	$(PY) -m image.build --model $(MODEL)

# Flash the image of MODEL onto virtual appliance VM (build/vms/$(VM)/), building it first if
# there is none; refused if its signature fails, the VM is of another model, or it holds newer
# firmware (FLASH_ARGS=--allow-downgrade flashes it anyway).
flash: setup
	@[ -f build/images/$(MODEL)-$(VERSION)/image.json ] || $(MAKE) --no-print-directory image MODEL=$(MODEL)
	$(PY) -m image.flash --model $(MODEL) --vm $(VM) $(FLASH_ARGS)

# Two mirrored virtual appliances a and b of MODEL (image built if missing, flashed with fresh
# data disks, booted in parallel, joined); prints ports and the admin password; Ctrl-C stops.
pair: setup
	$(PY) -m qemu.pair --model $(MODEL)

# The system tests (tests/system) on a fresh pair of virtual appliances of MODEL, flashed with
# the image of this tree as it is now (rebuilt when older than the sources; qemu/lab.py).
vmtest: setup
	MODEL=$(MODEL) $(PYTEST) --durations=0 -m system tests/system

# The same system tests against real appliances (hardware in the loop):
#   make hil HOSTS="ssh://root@HOST_A ssh://root@HOST_B"
# Tests that need QEMU (QMP link cut, hard power-off, flashing) skip with the reason.
hil: setup
	@[ -n "$(HOSTS)" ] || { echo 'make hil: give HOSTS="ssh://root@HOST_A ssh://root@HOST_B"' >&2; exit 2; }
	HOSTS="$(HOSTS)" $(PYTEST) -m system tests/system

clean:
	rm -rf build .pytest_cache .hypothesis
