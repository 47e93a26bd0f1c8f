package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/multinet/multinet/internal/policy/spec"
)

// policiesResource is the MultiNetworkPolicy resource, of either served version.
var policiesResource = spec.GroupVersionResource(spec.V1beta2).GroupResource()

// PolicyCheck is what CheckPolicy found in an admissible MultiNetworkPolicy.
type PolicyCheck struct {
	Refs     []NADRef // the NADs of its policy-for annotation, sorted, each once
	Warnings []string
}

// CheckPolicy checks a MultiNetworkPolicy with spec.Parse, the parser multinetd enforces it
// with; p.Namespace is the policy's namespace. A policy whose policy-for annotation is missing
// or empty applies to no network: it is admitted with a warning.
func CheckPolicy(p *spec.MultiNetworkPolicy) (PolicyCheck, error) {
	obj := policyObject(p)
	pol, err := spec.Parse(p)
	if err != nil {
		return PolicyCheck{}, &Error{Object: obj, Err: err}
	}
	var c PolicyCheck
	for _, n := range pol.Networks {
		ns, name, _ := strings.Cut(n, "/")
		c.Refs = append(c.Refs, NADRef{Namespace: ns, Name: name})
	}
	if len(c.Refs) == 0 {
		state := "is empty"
		if _, ok := p.Annotations[spec.PolicyForAnnotation]; !ok {
			state = "is missing"
		}
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s: annotation %s %s: the policy applies to no network",
			obj, spec.PolicyForAnnotation, state))
	}
	return c, nil
}

// policyObject names a policy; one created with generateName only by that prefix and "*".
func policyObject(p *spec.MultiNetworkPolicy) Object {
	obj := Object{Kind: spec.Kind, Namespace: p.Namespace, Name: p.Name}
	if obj.Name == "" {
		obj.Name = p.GenerateName + "*"
	}
	return obj
}

// policyChanged tells whether an update changed what CheckPolicy reads: the spec or the
// policy-for annotation. One that did not is admitted even if invalid, as NADs are.
func policyChanged(old, updated *spec.MultiNetworkPolicy) bool {
	a, inOld := old.Annotations[spec.PolicyForAnnotation]
	b, inNew := updated.Annotations[spec.PolicyForAnnotation]
	return inOld != inNew || a != b || !reflect.DeepEqual(old.Spec, updated.Spec)
}

func (h *Handler) reviewPolicy(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	var p, old spec.MultiNetworkPolicy
	if err := json.Unmarshal(req.Object.Raw, &p); err != nil {
		return deny(fmt.Errorf("%s %s/%s: decoding the object: %w", spec.Kind, req.Namespace, req.Name, err))
	}
	p.Namespace = req.Namespace
	check, err := CheckPolicy(&p)
	if err != nil {
		if req.Operation == admissionv1.Update && json.Unmarshal(req.OldObject.Raw, &old) == nil && !policyChanged(&old, &p) {
			// Left as it was (admitted before the webhook): other fields stay editable.
			return allow([]string{err.Error()})
		}
		h.Log.Info("refused", "multiNetworkPolicy", policyObject(&p).Name, "namespace", p.Namespace, "operation", req.Operation, "err", err)
		return deny(err)
	}
	missing := h.missing(ctx, policyObject(&p), check.Refs, "the policy selects no interface on it until it exists")
	return allow(append(check.Warnings, missing...))
}
