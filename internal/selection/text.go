package selection

import (
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// parseText splits the comma-separated form into elements. Names are
// validated later, with the JSON form's elements.
func parseText(value string) ([]nadv1.NetworkSelectionElement, error) {
	items := strings.Split(value, ",")
	elems := make([]nadv1.NetworkSelectionElement, 0, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		elem, reason := parseItem(item)
		if reason != "" {
			return nil, &Error{Index: i + 1, Network: item, Reason: reason}
		}
		elems = append(elems, elem)
	}
	return elems, nil
}

// parseItem splits `[namespace/]name[@ifname]`; it returns a reason when the
// item cannot be split.
func parseItem(item string) (nadv1.NetworkSelectionElement, string) {
	var elem nadv1.NetworkSelectionElement
	if item == "" {
		return elem, "empty item (a stray comma?)"
	}
	ref, ifname, hasAt := strings.Cut(item, "@")
	switch {
	case strings.Contains(ifname, "@"):
		return elem, `more than one "@"`
	case hasAt && ifname == "":
		return elem, `"@" without an interface name after it`
	}
	namespace, name, hasSlash := strings.Cut(ref, "/")
	switch {
	case !hasSlash:
		namespace, name = "", ref
	case strings.Contains(name, "/"):
		return elem, `more than one "/"`
	case namespace == "":
		return elem, `empty namespace before "/"`
	}
	elem.Namespace, elem.Name, elem.InterfaceRequest = namespace, name, ifname
	return elem, ""
}
