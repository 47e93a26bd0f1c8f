package blocks

import (
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
)

// Hand-written deep copies (no code generator for four small types): they make IPBlock and
// IPBlockList runtime.Objects, and let callers change a copy of an informer's object.

// DeepCopy returns a copy of b sharing no memory with it.
func (b *IPBlock) DeepCopy() *IPBlock {
	if b == nil {
		return nil
	}
	out := new(IPBlock)
	b.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies b into out.
func (b *IPBlock) DeepCopyInto(out *IPBlock) {
	*out = *b
	b.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	b.Spec.DeepCopyInto(&out.Spec)
}

// DeepCopyObject implements runtime.Object.
func (b *IPBlock) DeepCopyObject() runtime.Object {
	if c := b.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies s into out.
func (s *IPBlockSpec) DeepCopyInto(out *IPBlockSpec) {
	*out = *s
	out.ShareWanted = slices.Clone(s.ShareWanted)
	if s.Allocations != nil {
		out.Allocations = make(map[string]Allocation, len(s.Allocations))
		for addr, a := range s.Allocations {
			out.Allocations[addr] = *a.DeepCopy()
		}
	}
}

// DeepCopy returns a copy of a sharing no memory with it.
func (a *Allocation) DeepCopy() *Allocation {
	if a == nil {
		return nil
	}
	out := *a
	out.HeldUntil = a.HeldUntil.DeepCopy()
	return &out
}

// DeepCopy returns a copy of l sharing no memory with it.
func (l *IPBlockList) DeepCopy() *IPBlockList {
	if l == nil {
		return nil
	}
	out := new(IPBlockList)
	l.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies l into out.
func (l *IPBlockList) DeepCopyInto(out *IPBlockList) {
	*out = *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]IPBlock, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopyObject implements runtime.Object.
func (l *IPBlockList) DeepCopyObject() runtime.Object {
	if c := l.DeepCopy(); c != nil {
		return c
	}
	return nil
}
