// Package webhook is multinet's validating admission webhook. It checks a
// NetworkAttachmentDefinition's spec.config with netconf.Parse, a pod's network annotations
// with the selection package and a MultiNetworkPolicy with spec.Parse: the parsers multinetd
// runs, so that admission and multinetd never disagree. A refusal names the object, the field
// and the fault; a pod or a policy naming a NAD that does not exist is admitted with a
// warning (the NAD may come later).
//
// The checks are pure functions (CheckNAD, CheckPod, CheckPolicy); Handler serves them as an
// AdmissionReview endpoint over plain net/http, and Serve runs it with the TLS identity of
// package certs.
package webhook

import (
	"errors"
	"fmt"
	"strings"

	resourcev1 "k8s.io/api/resource/v1"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/multinet/multinet/internal/netconf"
	"github.com/multinet/multinet/internal/selection"
)

// Object names the object under review, as refusals and warnings name it.
type Object struct {
	Kind      string
	Namespace string
	// Name is the object's name; for a pod created with generateName only, that prefix
	// followed by "*".
	Name string
}

func (o Object) String() string {
	return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
}

// Error is a refusal: the object, the field and what is wrong with it.
type Error struct {
	Object Object
	Field  string // "spec.config", "metadata.annotations[k8s.v1.cni.cncf.io/networks]"; "" when Err names it
	Err    error  // the parser's own error
}

// Error returns e.g. `NetworkAttachmentDefinition team-a/storage: spec.config: plugin 2:
// type "../x": must be a plain binary name, not a path`. Without Field, the parser's error
// names the fields itself (a MultiNetworkPolicy's *spec.Error).
func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %v", e.Object, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Object, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// CheckNAD checks a NAD's spec.config as multinetd parses it at ADD (netconf.Resolve: Parse
// with the NAD's name for a config without one). An empty spec.config names a conf file on
// each node; it is accepted with a warning, since only the node can read it.
func CheckNAD(nad *nadv1.NetworkAttachmentDefinition) (warnings []string, err error) {
	obj := Object{Kind: "NetworkAttachmentDefinition", Namespace: nad.Namespace, Name: nad.Name}
	if strings.TrimSpace(nad.Spec.Config) == "" {
		return []string{fmt.Sprintf("%s: spec.config is empty: each node reads the CNI conf with network name %q from its CNI conf dir at ADD; not checked here",
			obj, nad.Name)}, nil
	}
	if _, err := netconf.Parse([]byte(nad.Spec.Config), nad.Name); err != nil {
		return nil, &Error{Object: obj, Field: "spec.config", Err: err}
	}
	return resourceNameWarnings(obj, nad.Annotations), nil
}

// resourceNameAnnotation makes a NAD device-backed (see internal/attach).
const resourceNameAnnotation = "k8s.v1.cni.cncf.io/resourceName"

// resourceNameWarnings warns of a resourceName no DRA device can carry: a device attribute's
// string value has at most resourcev1.DeviceAttributeMaxValueLength characters. Such a NAD
// still serves pods without claims (the device named in its config), so it is admitted.
func resourceNameWarnings(obj Object, annotations map[string]string) []string {
	rn, ok := annotations[resourceNameAnnotation]
	switch {
	case !ok:
		return nil
	case strings.TrimSpace(rn) == "":
		return []string{fmt.Sprintf("%s: annotation %s is empty: the network is not device-backed", obj, resourceNameAnnotation)}
	case len(rn) > resourcev1.DeviceAttributeMaxValueLength:
		return []string{fmt.Sprintf("%s: annotation %s is %d characters long: no DRA device can carry it (an attribute value has at most %d), so pods with ResourceClaims will find no device for it",
			obj, resourceNameAnnotation, len(rn), resourcev1.DeviceAttributeMaxValueLength)}
	}
	return nil
}

// NADRef is a NetworkAttachmentDefinition a pod names.
type NADRef struct {
	Namespace string
	Name      string
}

func (r NADRef) String() string { return r.Namespace + "/" + r.Name }

// PodCheck is what CheckPod found in an admissible pod.
type PodCheck struct {
	Refs     []NADRef // the NADs the pod names, each once, in order
	Warnings []string
}

// networkAnnotations are the annotations CheckPod reads.
var networkAnnotations = []string{
	selection.NetworksAnnotation, selection.AliasNetworksAnnotation, selection.DefaultNetworkAnnotation,
}

// HasNetworks tells whether annotations hold any annotation CheckPod reads: a pod without
// them is admitted without further work.
func HasNetworks(annotations map[string]string) bool {
	for _, k := range networkAnnotations {
		if _, ok := annotations[k]; ok {
			return true
		}
	}
	return false
}

// NetworksChanged tells whether an update changed any annotation CheckPod reads. An update
// that did not is admitted unchecked: a pod admitted before the webhook existed must stay
// updatable (labels, finalizers), whatever its annotations hold.
func NetworksChanged(old, updated map[string]string) bool {
	for _, k := range networkAnnotations {
		a, inOld := old[k]
		b, inNew := updated[k]
		if inOld != inNew || a != b {
			return true
		}
	}
	return false
}

// CheckPod checks a pod's networks annotation (the NPWG key, else its alias, as multinetd
// reads them with selection.FromAnnotations) and its default-network override
// (selection.DefaultNetwork), with namespace the pod's namespace.
func CheckPod(obj Object, annotations map[string]string) (PodCheck, error) {
	var c PodCheck
	key := selection.NetworksAnnotation
	if _, ok := annotations[key]; !ok {
		key = selection.AliasNetworksAnnotation
	} else if _, both := annotations[selection.AliasNetworksAnnotation]; both {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s: annotation %s is ignored: %s is set",
			obj, selection.AliasNetworksAnnotation, selection.NetworksAnnotation))
	}
	elems, err := selection.FromAnnotations(annotations, obj.Namespace)
	if err != nil {
		return PodCheck{}, &Error{Object: obj, Field: annotationField(key), Err: parserError(err)}
	}
	for _, e := range elems {
		c.add(NADRef{Namespace: e.Namespace, Name: e.Name})
	}
	ns, name, ok, err := selection.DefaultNetwork(annotations, obj.Namespace)
	if err != nil {
		return PodCheck{}, &Error{Object: obj, Field: annotationField(selection.DefaultNetworkAnnotation), Err: parserError(err)}
	}
	if ok {
		c.add(NADRef{Namespace: ns, Name: name})
	}
	return c, nil
}

func (c *PodCheck) add(ref NADRef) {
	for _, r := range c.Refs {
		if r == ref {
			return
		}
	}
	c.Refs = append(c.Refs, ref)
}

func annotationField(key string) string {
	return "metadata.annotations[" + key + "]"
}

// parserError drops the "annotation KEY: " the selection package puts before its
// *selection.Error, since the refusal names the field itself.
func parserError(err error) error {
	var se *selection.Error
	if errors.As(err, &se) {
		return se
	}
	return err
}
