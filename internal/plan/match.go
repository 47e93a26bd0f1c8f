package plan

import (
	"encoding/json"
	"regexp"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
)

// Identity is what makes two selection elements the same request: the element as JSON, every
// field included (interface as asked, or none), namespace filled in. An edit that changes any
// field makes a new identity: the old attachment goes and a new one comes.
func Identity(el *nadv1.NetworkSelectionElement) string {
	b, err := json.Marshal(el)
	if err != nil { // a parsed element always marshals
		return el.Namespace + "/" + el.Name
	}
	return string(b)
}

// generated matches the interface names multinet picks itself.
var generated = regexp.MustCompile(`^net[0-9]+$`)

// LegacyIdentity stands in for the identity of an attachment recorded before identities were:
// the network, and its interface unless multinet picked that name.
func LegacyIdentity(network, ifname string) string {
	namespace, name, _ := strings.Cut(network, "/")
	el := &nadv1.NetworkSelectionElement{Name: name, Namespace: namespace}
	if !generated.MatchString(ifname) {
		el.InterfaceRequest = ifname
	}
	return Identity(el)
}

// Attached is an attachment hot plug finds in a sandbox's record.
type Attached struct {
	IfName   string
	Identity string
	Complete bool // its ADD returned a result
}

// Match compares the networks a pod asks for now with its attachments (the default network
// left out of both) and returns which attachments to unplug and which networks (indexes into
// nets) to plug. Each network takes the first complete attachment of the same identity not
// yet taken, in record order, so reordering the annotation changes nothing, the same network
// listed twice keeps two interfaces, and removing one of two identical elements unplugs one
// (the later). Attachments whose ADD never completed are unplugged and their networks plugged
// again.
func Match(nets []Network, attached []Attached) (unplug []string, plug []int) {
	taken := make([]bool, len(attached))
	for i := range nets {
		id := Identity(nets[i].Element)
		j := 0
		for ; j < len(attached); j++ {
			if !taken[j] && attached[j].Complete && attached[j].Identity == id {
				break
			}
		}
		if j == len(attached) {
			plug = append(plug, i)
			continue
		}
		taken[j] = true
	}
	for j := range attached {
		if !taken[j] {
			unplug = append(unplug, attached[j].IfName)
		}
	}
	return unplug, plug
}
