// Package kubeconfig finds the Kubernetes API credentials of multinet's in-cluster
// components: a kubeconfig file when one is given, else the pod's ServiceAccount.
package kubeconfig

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig returns the client config of path, or the in-cluster one when path is empty,
// with userAgent set.
func RESTConfig(path, userAgent string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if path != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes credentials (use --kubeconfig outside a cluster): %w", err)
	}
	cfg.UserAgent = userAgent
	return cfg, nil
}
