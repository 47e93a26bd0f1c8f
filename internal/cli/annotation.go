package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/multinet/multinet/internal/selection"
)

// element is a network selection element as attach writes it in the JSON form.
type element struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"`
	Interface string   `json:"interface,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	MAC       string   `json:"mac,omitempty"`
}

// needsJSON reports whether the element has fields the short form cannot say.
func (e element) needsJSON() bool { return len(e.IPs) > 0 || e.MAC != "" }

// item is the element in the short form, `[namespace/]name[@ifname]`.
func (e element) item() string {
	s := e.Name
	if e.Namespace != "" {
		s = e.Namespace + "/" + s
	}
	if e.Interface != "" {
		s += "@" + e.Interface
	}
	return s
}

// networksKey is the annotation key the pod's networks are read from: the NPWG key, or the
// alias when only the alias is set.
func networksKey(annotations map[string]string) string {
	if _, ok := annotations[selection.NetworksAnnotation]; !ok {
		if _, ok := annotations[selection.AliasNetworksAnnotation]; ok {
			return selection.AliasNetworksAnnotation
		}
	}
	return selection.NetworksAnnotation
}

// isJSON tells the JSON form of a networks annotation from the short form.
func isJSON(value string) bool { return strings.HasPrefix(strings.TrimSpace(value), "[") }

// appendElement returns the annotation value with e added last, in the value's form: the
// short form stays short unless e needs JSON, and then the whole value becomes JSON.
func appendElement(value, podNamespace string, e element) (string, error) {
	value = strings.TrimSpace(value)
	switch {
	case value == "" && !e.needsJSON():
		return e.item(), nil
	case value != "" && !isJSON(value) && !e.needsJSON():
		return value + "," + e.item(), nil
	}
	raws, err := jsonElements(value, podNamespace)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("encode element %s: %w", e.item(), err)
	}
	return marshalElements(append(raws, b))
}

// removeElement returns the annotation value without its element at index, in its form.
func removeElement(value string, index int) (string, error) {
	if !isJSON(value) {
		items := strings.Split(value, ",")
		if index < 0 || index >= len(items) {
			return "", fmt.Errorf("no element %d in the networks annotation", index+1)
		}
		items = slices.Delete(items, index, index+1)
		for i := range items {
			items[i] = strings.TrimSpace(items[i])
		}
		return strings.Join(items, ","), nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(value), &raws); err != nil {
		return "", fmt.Errorf("networks annotation: %w", err)
	}
	if index < 0 || index >= len(raws) {
		return "", fmt.Errorf("no element %d in the networks annotation", index+1)
	}
	return marshalElements(slices.Delete(raws, index, index+1))
}

// jsonElements is the value's elements as JSON: kept as written when the value is JSON,
// converted from the short form otherwise.
func jsonElements(value, podNamespace string) ([]json.RawMessage, error) {
	var raws []json.RawMessage
	if isJSON(value) {
		if err := json.Unmarshal([]byte(value), &raws); err != nil {
			return nil, fmt.Errorf("networks annotation: %w", err)
		}
		return raws, nil
	}
	elems, err := selection.Parse(value, podNamespace)
	if err != nil {
		return nil, fmt.Errorf("networks annotation: %w", err)
	}
	for _, el := range elems {
		e := element{Name: el.Name, Interface: el.InterfaceRequest}
		if el.Namespace != podNamespace {
			e.Namespace = el.Namespace
		}
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode element %s: %w", e.item(), err)
		}
		raws = append(raws, b)
	}
	return raws, nil
}

func marshalElements(raws []json.RawMessage) (string, error) {
	if raws == nil {
		raws = []json.RawMessage{}
	}
	b, err := json.Marshal(raws)
	if err != nil {
		return "", fmt.Errorf("encode networks annotation: %w", err)
	}
	return string(b), nil
}

// parseNetworkArg parses attach's NET[@IF] argument (NET is name or namespace/name) with
// the daemon's parser.
func parseNetworkArg(arg string, ips []string, mac string) (element, error) {
	if strings.ContainsAny(arg, ",[{") {
		return element{}, fmt.Errorf("network %q: one network, as name, namespace/name, name@interface", arg)
	}
	elems, err := selection.Parse(arg, "")
	if err != nil {
		return element{}, fmt.Errorf("network %q: %w", arg, err)
	}
	if len(elems) != 1 {
		return element{}, fmt.Errorf("network %q: want one network", arg)
	}
	e := element{Name: elems[0].Name, Namespace: elems[0].Namespace, Interface: elems[0].InterfaceRequest, IPs: ips, MAC: mac}
	return e, nil
}
