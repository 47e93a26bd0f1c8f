//go:build tools

// Package tools pins the control-plane binaries the test bed builds: etcd and kube-apiserver.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
