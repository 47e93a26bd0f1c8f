// Package spec is the MultiNetworkPolicy API of group k8s.cni.cncf.io (versions v1beta1 and
// v1beta2, which adds endPort) and its parser: an object is read, validated and compiled into
// a Policy, the form the rest of multinet uses. It never calls the API server. The webhook and
// multinetd use the same Parse, so what is admitted is what is enforced.
package spec

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and the served versions; Resource is the plural resource name.
const (
	Group    = "k8s.cni.cncf.io"
	V1beta1  = "v1beta1"
	V1beta2  = "v1beta2"
	Resource = "multi-networkpolicies"
	Kind     = "MultiNetworkPolicy"
)

// PolicyForAnnotation lists the networks a MultiNetworkPolicy applies to: comma-separated
// NetworkAttachmentDefinition names, "name" (in the policy's namespace) or "namespace/name".
const PolicyForAnnotation = "k8s.v1.cni.cncf.io/policy-for"

// GroupVersionResource of a served version.
func GroupVersionResource(version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: Group, Version: version, Resource: Resource}
}

// MultiNetworkPolicy is NetworkPolicy under another kind: its spec has the same fields and
// meaning (podSelector, ingress, egress, policyTypes; ports with endPort; peers with
// podSelector, namespaceSelector, ipBlock), applied to the interfaces of the networks that
// PolicyForAnnotation lists.
type MultiNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              networkingv1.NetworkPolicySpec `json:"spec,omitempty"`
}

// MultiNetworkPolicyList is a list of MultiNetworkPolicy.
type MultiNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MultiNetworkPolicy `json:"items"`
}

// DeepCopyInto copies p into out.
func (p *MultiNetworkPolicy) DeepCopyInto(out *MultiNetworkPolicy) {
	*out = *p
	out.TypeMeta = p.TypeMeta
	p.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	p.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopy copies p.
func (p *MultiNetworkPolicy) DeepCopy() *MultiNetworkPolicy {
	if p == nil {
		return nil
	}
	out := new(MultiNetworkPolicy)
	p.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (p *MultiNetworkPolicy) DeepCopyObject() runtime.Object { return p.DeepCopy() }

// DeepCopyInto copies l into out.
func (l *MultiNetworkPolicyList) DeepCopyInto(out *MultiNetworkPolicyList) {
	out.TypeMeta = l.TypeMeta
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]MultiNetworkPolicy, len(l.Items))
	for i := range l.Items {
		l.Items[i].DeepCopyInto(&out.Items[i])
	}
}

// DeepCopyObject implements runtime.Object.
func (l *MultiNetworkPolicyList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := new(MultiNetworkPolicyList)
	l.DeepCopyInto(out)
	return out
}
