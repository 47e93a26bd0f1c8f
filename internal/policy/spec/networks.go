package spec

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Networks reads a PolicyForAnnotation value: comma-separated NetworkAttachmentDefinitions,
// "name" (in namespace, the policy's) or "namespace/name", spaces around each ignored. It
// returns them as "namespace/name", sorted, each once; none for an empty value. An empty
// entry, an entry of more than two parts or a name no NAD can have is an error naming every
// such entry.
func Networks(annotation, namespace string) ([]string, error) {
	nets, faults := networks(annotation, namespace)
	if len(faults) > 0 {
		return nil, errors.New(strings.Join(faults, "; "))
	}
	return nets, nil
}

// networks is Networks with each faulty entry's own message.
func networks(annotation, namespace string) (nets, faults []string) {
	if strings.TrimSpace(annotation) == "" {
		return nil, nil
	}
	for i, entry := range strings.Split(annotation, ",") {
		net, err := network(strings.TrimSpace(entry), namespace)
		if err != nil {
			faults = append(faults, fmt.Sprintf("entry %d: %v", i+1, err))
			continue
		}
		nets = append(nets, net)
	}
	if len(faults) > 0 {
		return nil, faults
	}
	slices.Sort(nets)
	return slices.Compact(nets), nil
}

// network resolves one entry to "namespace/name".
func network(entry, namespace string) (string, error) {
	if entry == "" {
		return "", errors.New("empty: a NetworkAttachmentDefinition name is expected")
	}
	parts := strings.Split(entry, "/")
	switch len(parts) {
	case 1:
		if namespace == "" {
			return "", fmt.Errorf("%q: no namespace to find it in", clip(entry))
		}
	case 2:
		namespace = parts[0]
	default:
		return "", fmt.Errorf("%q: not name nor namespace/name", clip(entry))
	}
	name := parts[len(parts)-1]
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return "", fmt.Errorf("%q: namespace %q: %s", clip(entry), clip(namespace), strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", fmt.Errorf("%q: name %q: %s", clip(entry), clip(name), strings.Join(errs, "; "))
	}
	return namespace + "/" + name, nil
}
