package shim

import "github.com/containernetworking/cni/pkg/version"

// supportedVersions are the CNI versions the shim accepts from a runtime; the daemon converts
// the default network's result to the requested one.
var supportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
