package attach

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/plan"
)

// request is a decoded CNI invocation.
type request struct {
	*cniapi.Request
	pod     plan.Pod // empty Name: no Kubernetes pod arguments (not a pod sandbox)
	version string   // cniVersion of the runtime's config: results are converted to it
	runtime map[string]any
	gcValid []types.GCAttachment
	// annotation is the networks annotation value ADD planned from.
	annotation string
}

// netConf is what multinet reads of the conf the runtime hands the shim.
type netConf struct {
	CNIVersion       string               `json:"cniVersion"`
	Name             string               `json:"name"`
	RuntimeConfig    map[string]any       `json:"runtimeConfig,omitempty"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

func decode(req *cniapi.Request) (*request, error) {
	if req == nil {
		return nil, invalidf(types.ErrDecodingFailure, "empty request")
	}
	if err := checkRequired(req); err != nil {
		return nil, err
	}
	var conf netConf
	if len(req.Config) > 0 {
		if err := json.Unmarshal(req.Config, &conf); err != nil {
			return nil, invalidf(types.ErrDecodingFailure, "network configuration on stdin: %v", err)
		}
	}
	pod, err := podFromArgs(req.Args)
	if err != nil {
		return nil, invalidf(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: %v", err)
	}
	return &request{Request: req, pod: pod, version: conf.CNIVersion, runtime: conf.RuntimeConfig,
		gcValid: conf.ValidAttachments}, nil
}

// podFromArgs reads the K8S_POD_* keys the runtime puts in CNI_ARGS.
func podFromArgs(args string) (plan.Pod, error) {
	var pod plan.Pod
	if args == "" {
		return pod, nil
	}
	for _, kv := range strings.Split(args, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return pod, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			pod.Namespace = v
		case "K8S_POD_NAME":
			pod.Name = v
		case "K8S_POD_UID":
			pod.UID = v
		}
	}
	if (pod.Name == "") != (pod.Namespace == "") {
		return pod, fmt.Errorf("K8S_POD_NAMESPACE and K8S_POD_NAME go together (got %q and %q)", pod.Namespace, pod.Name)
	}
	return pod, nil
}

// checkRequired enforces the CNI_* variables each verb needs.
func checkRequired(req *cniapi.Request) error {
	need := map[string][]string{
		"ADD":   {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"},
		"CHECK": {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"},
		"DEL":   {"CNI_CONTAINERID", "CNI_IFNAME"},
	}[req.Command]
	have := map[string]string{"CNI_CONTAINERID": req.ContainerID, "CNI_NETNS": req.Netns, "CNI_IFNAME": req.IfName}
	for _, k := range need {
		if have[k] == "" {
			return invalidf(types.ErrInvalidEnvironmentVariables, "%s: %s is required", req.Command, k)
		}
	}
	return nil
}
