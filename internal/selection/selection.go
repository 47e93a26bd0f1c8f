// Package selection parses and validates a pod's network selection annotation
// (k8s.v1.cni.cncf.io/networks) into NPWG network selection elements, and the
// Multus default-network override.
//
// It is pure: it never calls the Kubernetes API and checks only what the
// annotation itself can tell. Whether the named NetworkAttachmentDefinitions
// exist, and whether the pod may use them, is for the caller to decide.
package selection

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// Annotation keys read by this package.
const (
	// NetworksAnnotation is the NPWG key selecting a pod's additional networks.
	NetworksAnnotation = "k8s.v1.cni.cncf.io/networks"
	// AliasNetworksAnnotation is the original proposal's key, accepted as an alias.
	AliasNetworksAnnotation = "alpha.network.k8s.io/networks"
	// DefaultNetworkAnnotation overrides the cluster default network of a pod.
	DefaultNetworkAnnotation = "v1.multus-cni.io/default-network"
)

// FromAnnotations returns the pod's network selection elements. The NPWG key
// wins over the alias; with neither key present it returns nil, nil. Errors
// name the annotation key and wrap an *Error.
func FromAnnotations(annotations map[string]string, podNamespace string) ([]nadv1.NetworkSelectionElement, error) {
	for _, key := range []string{NetworksAnnotation, AliasNetworksAnnotation} {
		value, ok := annotations[key]
		if !ok {
			continue
		}
		elems, err := Parse(value, podNamespace)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", key, err)
		}
		return elems, nil
	}
	return nil, nil
}

// Raw is the networks annotation value FromAnnotations reads: the NPWG key's, else the
// alias's, else "".
func Raw(annotations map[string]string) string {
	if v, ok := annotations[NetworksAnnotation]; ok {
		return v
	}
	return annotations[AliasNetworksAnnotation]
}

// Parse parses one networks annotation value in either form:
//
//   - a comma-separated list of `name`, `namespace/name`, `name@ifname` or
//     `namespace/name@ifname` items, whitespace around items trimmed;
//   - a JSON list of NPWG network selection elements.
//
// An empty value gives no elements. An element without a namespace gets
// podNamespace; empty lists in an element become nil. Every element is validated (see the package tests for the
// rules); the first fault is returned as an *Error.
func Parse(value, podNamespace string) ([]nadv1.NetworkSelectionElement, error) {
	value = strings.TrimSpace(value)
	var elems []nadv1.NetworkSelectionElement
	var err error
	switch {
	case value == "":
		return nil, nil
	case value[0] == '{':
		return nil, &Error{Reason: "a JSON object, not a list: put the element in a list, [{...}]"}
	case value[0] == '[':
		elems, err = parseJSON(value)
	default:
		elems, err = parseText(value)
	}
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, nil
	}
	for i := range elems {
		normalize(&elems[i], podNamespace)
	}
	if err := validate(elems); err != nil {
		return nil, err
	}
	return elems, nil
}

// normalize gives an element the pod's namespace if it has none, and drops
// empty lists, so that equal requests compare equal whatever their form.
func normalize(elem *nadv1.NetworkSelectionElement, podNamespace string) {
	if elem.Namespace == "" {
		elem.Namespace = podNamespace
	}
	if len(elem.IPRequest) == 0 {
		elem.IPRequest = nil
	}
	if len(elem.PortMappingsRequest) == 0 {
		elem.PortMappingsRequest = nil
	}
	if len(elem.GatewayRequest) == 0 {
		elem.GatewayRequest = nil
	}
}

// DefaultNetwork parses the v1.multus-cni.io/default-network override, `name`
// or `namespace/name` (no @ifname: the default network's interface is the
// runtime's). ok is false when the annotation is absent.
func DefaultNetwork(annotations map[string]string, podNamespace string) (namespace, name string, ok bool, err error) {
	value, found := annotations[DefaultNetworkAnnotation]
	if !found {
		return "", "", false, nil
	}
	elem, err := parseDefaultNetwork(strings.TrimSpace(value), podNamespace)
	if err != nil {
		return "", "", false, fmt.Errorf("annotation %s: %w", DefaultNetworkAnnotation, err)
	}
	return elem.Namespace, elem.Name, true, nil
}

func parseDefaultNetwork(value, podNamespace string) (nadv1.NetworkSelectionElement, error) {
	var none nadv1.NetworkSelectionElement
	switch {
	case value == "":
		return none, &Error{Reason: "empty: want name or namespace/name"}
	case value[0] == '[' || value[0] == '{':
		return none, &Error{Reason: "want name or namespace/name, not JSON"}
	case strings.Contains(value, ","):
		return none, &Error{Reason: "only one default network may be given"}
	}
	elems, err := Parse(value, podNamespace)
	if err != nil {
		return none, err
	}
	if elems[0].InterfaceRequest != "" {
		return none, &Error{Index: 1, Network: value, Field: "interface",
			Value: elems[0].InterfaceRequest, Reason: "not allowed: the default network's interface is the runtime's"}
	}
	return elems[0], nil
}

// parseJSON decodes a JSON list, element by element so that a fault names its element.
func parseJSON(value string) ([]nadv1.NetworkSelectionElement, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(value), &raws); err != nil {
		return nil, &Error{Reason: "not a valid JSON list nor a comma-separated list", Err: jsonError(err)}
	}
	elems := make([]nadv1.NetworkSelectionElement, 0, len(raws))
	for i, raw := range raws {
		var elem nadv1.NetworkSelectionElement
		if err := json.Unmarshal(raw, &elem); err != nil {
			return nil, &Error{Index: i + 1, Network: peekNetwork(raw),
				Reason: "not a valid network selection element", Err: err}
		}
		elems = append(elems, elem)
	}
	return elems, nil
}

// jsonError adds the offset to a JSON syntax error, which does not say it.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return fmt.Errorf("%w (at offset %d)", err, syntax.Offset)
	}
	return err
}

// peekNetwork reads what it can of an element's namespace/name, for an error message.
func peekNetwork(raw json.RawMessage) string {
	var ref struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	_ = json.Unmarshal(raw, &ref) // best effort: the caller reports the real error
	return label(ref.Namespace, ref.Name)
}

// label names an element in error messages: "namespace/name", or "name".
func label(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
