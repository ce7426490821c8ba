# Bulkhead. `make image` builds out/default/disk.qcow2; `make test` runs the
# unit, host-integration and QEMU tests. Both install what they need first.
SHELL := /bin/bash
GO ?= /usr/local/go/bin/go
export PATH := /usr/local/go/bin:/usr/sbin:/sbin:$(PATH)
BIN := out/bin
IMAGE_DEF ?= images/default.yaml
GOFLAGS_BUILD := -trimpath -buildvcs=false
VERSION := $(shell sed -n 's/^version: *//p' $(IMAGE_DEF))
LDFLAGS := -s -w -X github.com/bulkhead-os/bulkhead/hostd.Version=$(VERSION) -X github.com/bulkhead-os/bulkhead/builder.Version=$(VERSION)
# A static cgo binary (glibc and libseccomp archives): netgo and osusergo
# keep glibc's NSS, which static glibc cannot load, out of it.
SHIM_TAGS := seccomp netgo osusergo
SHIM_LDFLAGS := -linkmode external -extldflags -static

# Debian packages the build and the tests use, and nothing else: installed
# without their recommendations.
APT_PACKAGES := mmdebstrap qemu-system-x86 qemu-utils ovmf erofs-utils dosfstools mtools \
	e2fsprogs cryptsetup-bin gdisk fdisk cloud-image-utils genisoimage xorriso xfsprogs \
	busybox-static gcc libseccomp-dev pkg-config iptables etcd-server docker-registry \
	runc crun skopeo umoci openssh-client docker.io docker-compose
# Only the long tier's TestVagrantUp drives these (Vagrant brings Ruby): make
# test does not spend CI time installing them.
APT_PACKAGES_LONG := vagrant vagrant-libvirt libvirt-daemon libvirt-clients dnsmasq-base

.PHONY: all deps deps-long bin image test test-unit test-qemu test-long bench clean

all: image

# deps installs what a fresh Debian 12 machine lacks; a stamp keeps reruns fast.
deps: out/.deps-stamp
out/.deps-stamp: Makefile
	@mkdir -p out
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download
	@touch $@

deps-long: out/.deps-long-stamp
out/.deps-long-stamp: Makefile | deps
	@missing=$$(for p in $(APT_PACKAGES_LONG); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

bin: deps
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/builder ./cmd/hostctl
	# hostd and hostd-shim embed runc's libcontainer, whose nsenter is C:
	# cgo, linked against the same Debian release's glibc as the image.
	CGO_ENABLED=1 $(GO) build $(GOFLAGS_BUILD) -tags seccomp -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/hostd
	# hostd-shim runs in any image (as docker-init) and is exec'd twice at
	# every container start (shim, then the container's init): static.
	CGO_ENABLED=1 $(GO) build $(GOFLAGS_BUILD) -tags '$(SHIM_TAGS)' -ldflags '$(LDFLAGS) $(SHIM_LDFLAGS)' -o $(BIN)/ ./cmd/hostd-shim

# A per-checkout signing key for updates: the image trusts its .pub.
images/keys/dev.pub: | bin
	$(BIN)/builder keygen --dir images/keys dev

image: bin images/keys/dev.pub
	$(BIN)/builder build $(IMAGE_DEF)

# The QEMU tests are test-qemu's: without -image they would only skip.
UNIT_PKGS = $$($(GO) list ./... | grep -v /qemu-tests)

# Host tests of the long tier (see test-long).
# TestReproducibleBuild: two image builds (tmpfs, then ext4 from a cold
# root tree); TestAssemblyIndependentOfHost stands for it in make test.
UNIT_LONG_TESTS := TestComposeV2Conformance|TestReproducibleBuild

test-unit: deps
	$(GO) vet -tags seccomp ./...
	$(GO) test -tags seccomp -timeout 30m -skip '^($(UNIT_LONG_TESTS))$$' $(UNIT_PKGS)

# The long tier: matrices and cases whose representative runs in make test
# (TestUpdateTrust's failing trial stands for TestUpdateFailedTrial and
# TestBootCounterFallsBack), and TestVagrantUp (Debian's vagrant and vagrant-libvirt
# on a libvirtd the test starts: box add, up, ssh, destroy under TCG), which has no
# stand-in. The Makefile selects them; no test skips itself.
LONG_TESTS := TestDiskFormatsMatrix|TestBootChainPowerCut|TestBootChainFromOldImage|TestUpdateBootPathCorruption|TestCloudInitSeedMatrix|TestBootCounterFallsBack|TestStorageSetupMatrix|TestUpdatePowerCut|TestUpdateTrialEmergency|TestUpdateFailedTrial|TestVagrantUp

test-qemu: image
	$(GO) test -count=1 -timeout 80m -v -skip '^($(LONG_TESTS))$$' ./qemu-tests/ -args -image $(CURDIR)/out/default

test: test-unit test-qemu

test-long: image deps-long $(BIN)/docker-compose-v2
	BULKHEAD_COMPOSE_V2=$(CURDIR)/$(BIN)/docker-compose-v2 BULKHEAD_BIN=$(CURDIR)/$(BIN) BULKHEAD_CACHE=/var/cache/bulkhead \
		$(GO) test -tags seccomp -count=1 -timeout 60m -v -run '^($(UNIT_LONG_TESTS))$$' ./hostd/dockerapi/ ./builder/
	$(GO) test -count=1 -timeout 3h -v -run '^($(LONG_TESTS))$$' ./qemu-tests/ -args -image $(CURDIR)/out/default

# Compose v2 (github.com/docker/compose), for its conformance test: built
# from a module of its own, so its dependencies stay out of go.mod.
COMPOSE_V2_MOD := hostd/dockerapi/testdata/compose-v2
$(BIN)/docker-compose-v2: $(COMPOSE_V2_MOD)/go.mod $(COMPOSE_V2_MOD)/go.sum | deps
	@mkdir -p $(BIN)
	cd $(COMPOSE_V2_MOD) && CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) \
		-ldflags "-X github.com/docker/compose/v5/internal.Version=$$($(GO) list -m -f '{{.Version}}' github.com/docker/compose/v5)" \
		-o $(CURDIR)/$(BIN)/docker-compose-v2 github.com/docker/compose/v5/cmd

# Benchmarks print one row each (name, iterations, then the measured
# metrics: s/build, qcow2-MB, s-to-hostd-ready, speedup-x, fleet-s, ...).
bench: image out/cloudinit-bench/disk.qcow2
	$(GO) test -tags seccomp -run '^$$' -bench . -benchtime 1x -timeout 2h ./builder/ ./hostd/... ./updater/... ./cloudinit/...
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 3h ./qemu-tests/ -args -image $(CURDIR)/out/default

# The comparison image for BenchmarkProvision: Debian's cloud-init instead of
# bulkhead-provision.
out/cloudinit-bench/disk.qcow2: bin images/keys/dev.pub qemu-tests/testdata/cloudinit-bench.yaml
	$(BIN)/builder build qemu-tests/testdata/cloudinit-bench.yaml --out out/cloudinit-bench

clean:
	rm -rf out
