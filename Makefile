# multinet: the two commands a new user needs are `make demo` and `make test`.
# Both install what they need (Debian packages, tools built from the pinned Go modules in
# hack/tools, cached in $${XDG_CACHE_HOME:-~/.cache}/multinet).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
# An execution count, not a duration: a -fuzztime duration once ended a clean run of
# FuzzPlanSubnetGroups with "context deadline exceeded"; a count has no deadline to race.
FUZZTIME ?= 100000x
export GONOSUMDB := k8s.io/*

.PHONY: all build deps tools lint unit test e2e fuzz bench demo demo-netns clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

deps:
	@hack/deps.sh

tools: deps
	@hack/tools.sh all >/dev/null

lint: tools
	@echo "[lint] golangci-lint (config .golangci.yml)"
	@"$$(hack/tools.sh lint 2>/dev/null | tail -1)/golangci-lint" run ./...

## test: lint, unit tests, integration tests against a real apiserver and real plugins
## (root needed for network namespaces), then each fuzz target for $(FUZZTIME) executions. Packages run
## one at a time (-p 1): the integration, e2e and cluster tests share host resources.
test: tools lint
	@echo "[test] go test ./... (integration tests start etcd + kube-apiserver and use network namespaces)"
	$(GO) test -count=1 -p 1 -timeout 30m ./...
	@$(MAKE) --no-print-directory fuzz

fuzz:
	@for t in FuzzSelection:./internal/selection FuzzNADConfig:./internal/netconf \
	          FuzzParseSeed:./internal/routes FuzzParseNetConf:./internal/routes FuzzPlanSubnetGroups:./internal/routes \
	          FuzzInterpret:./internal/dhcp FuzzScanner:./internal/cniapi/wire \
	          FuzzParse:./internal/ipam/pool FuzzBlockName:./internal/ipam/pool \
	          FuzzParse:./internal/policy/spec FuzzSubtract:./internal/policy/compile \
	          FuzzSalvage:./internal/checkpoint FuzzDelegateInputs:./internal/dra/claims FuzzDeviceName:./internal/dra/nics; do \
	  echo "[fuzz] $${t%%:*} for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) "$${t#*:}" || exit 1; \
	done

## e2e: only the end-to-end tests on a real one-node cluster (root).
e2e: tools
	$(GO) test -count=1 -v -run '^TestRealNode' -timeout 30m ./test/e2e/

## bench: the benchmark table (latency vs bare delegates, API requests, throughput, RSS), the
## multinet-ipam tables (10 nodes' managers on a real kube-apiserver; the API requests of 10, 50
## and 100 idle nodes), MultiNetworkPolicy (policy change -> rules in 100 pods, the time a
## pod's ADD spends on its rules, the peer cache), then pod create -> Running on a real node,
## multinet vs the cluster network alone, and a DRA device pod's RunPodSandbox next to a
## bridge one's (two real-node clusters, one after the other).
bench: tools
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 10m ./internal/ipam/
	$(GO) test -run '^$$' -bench 'PolicyChange|PeerChange|PeerCache' -benchtime 1x -timeout 10m ./internal/policy/
	$(GO) test -run '^$$' -bench 'Enforce' -benchtime 200x -timeout 10m ./internal/policy/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 45m ./test/e2e/

## demo: a real node (kubelet + containerd), multinet installed from deploy/, three pods of a
## Deployment with two secondary networks, their interfaces, network-status and pings.
demo: deps
	@hack/tools.sh kube >/dev/null && hack/tools.sh cni >/dev/null && hack/tools.sh containerd >/dev/null
	@set -o pipefail; $(GO) test -count=1 -v -run '^TestRealNodeDemo$$' -timeout 20m ./test/e2e/ | \
	  sed -u -e '/^=== \(RUN\|NAME\|PAUSE\|CONT\)/d' -e '/^--- PASS/d' -e '/^PASS$$/d' -e '/^ok /d'

## demo-netns: the faster demo: a simulated node (network namespaces, no kubelet).
demo-netns: deps build
	@hack/tools.sh kube >/dev/null && hack/tools.sh cni >/dev/null
	$(GO) test -count=1 -v -run '^TestDemo$$' -timeout 15m ./test/demo/

clean:
	rm -rf $(BIN)
